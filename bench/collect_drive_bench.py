"""Collect SFTP → Google Drive: 1 GB from a loopback OpenSSH sshd into the local Drive v3 server,
offsite's collect copy vs a plain google-api-python-client upload of the same file.

Same machine, same sshd, same Drive server (devstack/driveapi), same file, same cipher
(``aes128-gcm@openssh.com``) and the same 8 MiB upload chunk, in the same run:

- **offsite**: what the ``collect_copy`` stage does per file and destination
  (``shared.collect.copy.copy_verified``): look the copy up by its identity labels
  (``files.list`` with ``appProperties has …``), stream the SFTP file (pipelined READs) through
  SHA-1 + MD5 into one resumable upload session (``put_labelled``, one chunk in memory,
  appProperties set), check Drive's md5Checksum, then verify (Drive's sha1Checksum). Only the
  stage's state records (a few small GCS objects per file) are left out: no GCS here.
- **peer**: paramiko opens the same file (plain ``SFTPClient.open``; and with
  ``prefetch()``, paramiko's documented fast read — the faster of the two is the peer) and
  google-api-python-client uploads it sequentially: ``MediaIoBaseUpload(resumable=True,
  chunksize=8 MiB)``, ``files.create`` + ``next_chunk()`` until done. No hashing, no lookup,
  no verification: less work than offsite does.

Each side runs in its own child process (bench.children.run_child); throughput = bytes / seconds
from the child's start marker (after imports; the SFTP connection and the OAuth token are inside
the figure for both). Memory = peak RSS − RSS at the start marker. Targets: ≥ 0.9× the peer,
offsite's peak RSS ≤ baseline + 64 MB (one 8 MiB chunk, the pipelined reader's window, HTTP
buffers). Every upload is checked (Drive's md5Checksum = the file's) and deleted.

rclone is not a peer here: its drive backend can be pointed at another OAuth token URL
(``token_url``) but not at another API endpoint (it always calls www.googleapis.com), so it
cannot reach the local Drive server without intercepting DNS and TLS for Google's hosts.

Needs root (a private sshd and its login user, like the tests). Not a test: nothing here asserts.

    .venv/bin/python -m bench.collect_drive_bench [--quick] [--runs N]
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Self

from bench.children import REPO_ROOT, mark_start, python_child, run_child
from bench.common import MB, MIN_RUNS, Row, all_of, in_turns, median, scenario_main, within_rss

SIZE_FULL = 1_000_000_000
SIZE_QUICK = 64_000_000
RSS_LIMIT_MB = 64.0
TARGET = 0.9
CHUNK = 8 * 1024 * 1024  # offsite's default chunk_size_bytes; the peer's chunksize
CIPHER = "aes128-gcm@openssh.com"  # what offsite negotiates first (connect.FAST_CIPHERS); the peer too
USER = "bench@example.com"
FILE = "blob.bin"


# ---- the children ------------------------------------------------------------------------------


def offsite_collect(
    drive_url: str, refresh_token: str, folder_id: str, sshd: dict[str, Any], directory: str, size: int, mtime: int
) -> dict[str, Any]:
    """Child: one collect copy of ``directory/blob.bin`` into the Drive folder (module docstring)."""
    from devstack.driveapi.server import CLIENT_ID, CLIENT_SECRET
    from shared.collect.copy import copy_verified
    from shared.collect.messages import CollectFile
    from shared.collect.selection import FileIdentity
    from shared.collect.source import SftpSource
    from shared.config import SftpPartner
    from shared.config.drive import DriveAuth
    from shared.config.drive import DriveDestination as DriveSettings
    from shared.destinations.drive.destination import DriveDestination
    from shared.secrets import Secret

    auth = DriveAuth(
        method="oauth",
        client_id=CLIENT_ID,
        client_secret=Secret(CLIENT_SECRET),
        refresh_token=Secret(refresh_token),
        token_uri=f"{drive_url}/token",
    )
    settings = DriveSettings(folder_id=folder_id, auth=auth, api_url=drive_url, chunk_size_bytes=CHUNK)
    partner = SftpPartner(
        host="127.0.0.1",
        port=sshd["port"],
        username=sshd["user"],
        private_key=Secret(f"file:{sshd['key']}"),
        known_hosts=Secret(f"file:{sshd['known_hosts']}"),
    )
    dest = DriveDestination("bench", settings)
    source = SftpSource("bench", partner, directory)
    message = CollectFile(collect="bench", run_id="bench", name=FILE, size=size, mtime=mtime)
    identity = FileIdentity("bench", f"{directory}/{FILE}", size, mtime)
    mark_start()
    started = time.perf_counter()
    copy = copy_verified(dest, source, message, identity, f"run-{time.time_ns()}/{FILE}")
    seconds = time.perf_counter() - started
    found = dest.stat(copy.path)
    assert found is not None and found.remote_id is not None
    return {"seconds": seconds, "md5": copy.md5, "status": copy.status, "file_id": found.remote_id}


def client_upload(
    drive_url: str, token: str, folder_id: str, sshd: dict[str, Any], directory: str, prefetch: bool
) -> dict[str, Any]:
    """Child: paramiko read → MediaIoBaseUpload → files.create, chunk after chunk (the peer)."""
    import paramiko
    from google.oauth2.credentials import Credentials
    from googleapiclient.discovery import build_from_document
    from googleapiclient.http import MediaIoBaseUpload

    from devstack.driveapi.server import discovery_document

    mark_start()
    started = time.perf_counter()
    transport = paramiko.Transport(("127.0.0.1", sshd["port"]))
    transport.get_security_options().ciphers = (CIPHER,)
    transport.start_client()
    host_keys = paramiko.HostKeys(sshd["known_hosts"])
    server_key = transport.get_remote_server_key()
    known = host_keys.lookup(f"[127.0.0.1]:{sshd['port']}") or host_keys.lookup("127.0.0.1") or {}
    if known.get(server_key.get_name()) != server_key:
        raise RuntimeError("host key mismatch")
    transport.auth_publickey(sshd["user"], paramiko.Ed25519Key.from_private_key_file(sshd["key"]))
    sftp = paramiko.SFTPClient.from_transport(transport)
    assert sftp is not None
    with sftp.open(f"{directory}/{FILE}", "rb") as fh:
        if prefetch:
            fh.prefetch()
        drive = build_from_document(discovery_document(drive_url), credentials=Credentials(token=token))
        media = MediaIoBaseUpload(fh, "application/octet-stream", chunksize=CHUNK, resumable=True)
        request = drive.files().create(
            body={"name": FILE, "parents": [folder_id]}, media_body=media, fields="id,size,md5Checksum"
        )
        response = None
        while response is None:
            _, response = request.next_chunk()
    seconds = time.perf_counter() - started
    transport.close()
    return {"seconds": seconds, "md5": response["md5Checksum"], "file_id": response["id"], "cipher": CIPHER}


# ---- the servers -----------------------------------------------------------------------------------


class _Setup:
    """A private sshd with its login user and the file in its directory; the Drive server and a folder."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.dir = Path(tempfile.mkdtemp(prefix="offsite-collect-drive-bench-"))
        self.dir.chmod(0o755)
        self.sshd: Any = None
        self.drive: Any = None

    def __enter__(self) -> Self:
        from devstack.driveapi import DriveApiServer
        from tests.sftp.sshd_server import Sshd, ensure_user, user_dir

        user = ensure_user()
        self.sshd = Sshd(user).start()
        self.remote_dir = user_dir(user, "collect-bench")
        known_hosts = self.dir / "known_hosts"
        known_hosts.write_text(self.sshd.known_hosts)
        self.ssh = {
            "port": self.sshd.port,
            "user": user.name,
            "key": str(self.sshd.client_key),
            "known_hosts": str(known_hosts),
        }
        path = self.remote_dir / FILE
        digest = hashlib.md5()
        with path.open("wb") as out:
            left = self.size
            while left:
                block = os.urandom(min(left, 8 * 1024 * 1024))
                digest.update(block)
                out.write(block)
                left -= len(block)
        self.md5, self.mtime = digest.hexdigest(), int(path.stat().st_mtime)
        self.drive = DriveApiServer(self.dir / "drive").start()
        service = self.drive.service(self.drive.access_token(USER))
        body = {"name": "collect-bench", "mimeType": "application/vnd.google-apps.folder", "parents": ["root"]}
        self.folder_id = service.files().create(body=body, fields="id").execute()["id"]
        return self

    def __exit__(self, *exc: object) -> None:
        if self.drive is not None:
            self.drive.stop()
        if self.sshd is not None:
            self.sshd.cleanup()
            shutil.rmtree(self.remote_dir, ignore_errors=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def landed(self, result: dict[str, Any]) -> None:
        """The upload's md5 must be the file's (and offsite's copy a new upload); then it is deleted
        (the disk holds one copy at a time)."""
        if result.get("status", "uploaded") != "uploaded":
            raise RuntimeError(f"offsite's copy was {result.get('status')!r}, expected a new upload")
        if result.get("md5") != self.md5:
            raise RuntimeError(f"Drive holds md5 {result.get('md5')}, the file's is {self.md5}")
        service = self.drive.service(self.drive.access_token(USER))
        service.files().delete(fileId=result["file_id"]).execute()


def _side(setup: _Setup, target: str, **kwargs: Any) -> tuple[float, float]:
    """One upload by child ``target`` of the file on the sshd into the Drive folder, checked and
    deleted: (MB/s, MB of RSS over the child's baseline)."""
    argv = python_child(
        target,
        drive_url=setup.drive.base_url,
        folder_id=setup.folder_id,
        sshd=setup.ssh,
        directory=str(setup.remote_dir),
        **kwargs,
    )
    child = run_child(argv, cwd=REPO_ROOT)
    setup.landed(child.result)
    return setup.size / MB / child.seconds, child.rss_over_baseline / MB


def _offsite(setup: _Setup) -> tuple[float, float]:
    return _side(
        setup,
        "collect_drive_bench:offsite_collect",
        refresh_token=setup.drive.refresh_token(USER),
        size=setup.size,
        mtime=setup.mtime,
    )


def _client(setup: _Setup, prefetch: bool) -> tuple[float, float]:
    token = setup.drive.access_token(USER)
    return _side(setup, "collect_drive_bench:client_upload", token=token, prefetch=prefetch)


def run(quick: bool, runs: int = MIN_RUNS) -> list[dict[str, Any]]:
    """Every side ``runs`` times, in turns; one row (offsite vs the faster client variant)."""
    size = SIZE_QUICK if quick else SIZE_FULL
    sides: dict[str, Any] = {
        "offsite": _offsite,
        "client": lambda s: _client(s, False),
        "client-prefetch": lambda s: _client(s, True),
    }
    with _Setup(size) as setup:
        speeds, rss = in_turns(list(sides), runs, lambda side, _i: sides[side](setup))
    peer = max(("client", "client-prefetch"), key=lambda side: median(speeds[side]))
    notes = (
        f"cipher {CIPHER}, {CHUNK // (1024 * 1024)} MiB chunks on both sides; client variants: plain read "
        f"{median(speeds['client']):.0f} MB/s (+{max(rss['client']):.0f} MB), prefetch "
        f"{median(speeds['client-prefetch']):.0f} MB/s (+{max(rss['client-prefetch']):.0f} MB); offsite also "
        "hashes SHA-1+MD5, sets appProperties, looks the copy up first and verifies after"
    )
    row = Row(
        scenario="collect-drive",
        case=f"{size / 1e9:g} GB SFTP→Drive collect vs client upload",
        unit="MB/s",
        offsite=median(speeds["offsite"]),
        peer=median(speeds[peer]),
        peer_name=f"paramiko {'prefetch' if peer.endswith('prefetch') else 'read'} → google-api-python-client "
        "MediaIoBaseUpload (resumable, sequential)",
        target=f">= {TARGET:g}x client, RSS <= baseline + {RSS_LIMIT_MB:g} MB",
        peak_rss_mb=max(rss["offsite"]),
        rss_limit_mb=RSS_LIMIT_MB,
        runs=len(speeds["offsite"]),
        notes=notes,
        samples={f"{k}_mb_s": v for k, v in speeds.items()} | {f"{k}_rss_mb": v for k, v in rss.items()},
    )
    row.passed = all_of(row.ratio is not None and row.ratio >= TARGET, within_rss(row.peak_rss_mb, RSS_LIMIT_MB))
    return [row.to_dict()]


def main(argv: list[str] | None = None) -> int:
    return scenario_main(run, __doc__, SIZE_QUICK, SIZE_FULL, argv)


if __name__ == "__main__":
    sys.exit(main())
