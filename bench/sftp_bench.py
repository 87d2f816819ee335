"""SFTP delivery: 1 GB from the GCS emulator to a loopback OpenSSH sshd, offsite vs OpenSSH and rclone.

Same machine, same sshd, same cipher (``aes128-gcm@openssh.com``, an AEAD: no separate MAC),
in the same run, two like-for-like comparisons:

(a) the same local file → sshd: offsite's SFTP code path (``SftpDestination.put``: pipelined
    WRITEs sized by ``limits@openssh.com``, SHA-1 on the way, ``.partial`` + posix-rename) vs
    OpenSSH ``sftp -b``, with each of :data:`OPENSSH_SETTINGS` tried and the best median taken;
(b) the same GCS emulator object → sshd: what transfer_sftp does (``ObjectReader``, CRC32C
    checked, prefetching) vs ``rclone copyto`` at its best documented settings for OpenSSH
    (255k requests, 64 in flight). offsite with ``connections_per_file: 2`` is reported too.

Each side runs in its own child process (bench.children.run_child): throughput = bytes / seconds
(offsite: from its start marker, after imports, to the published file, connection included;
the peers: process spawn to exit, so they pay their start-up and handshake inside the figure).
Memory = offsite's peak RSS − its RSS at the start marker. Targets: (a) ≥ 0.9× OpenSSH,
(b) ≥ 1.2× rclone, peak RSS ≤ baseline + 64 MB. Medians of ``runs`` runs; the sides take
turns so machine noise hits all of them.

Needs root (a private sshd and its login user, like the tests). Not a test: nothing here asserts.

    .venv/bin/python -m bench.sftp_bench [--quick] [--runs N]
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

from bench import sftp_libraries
from bench.children import REPO_ROOT, ChildRun, mark_start, python_child, run_child
from bench.common import (
    MB,
    MIN_RUNS,
    FakeGcs,
    Row,
    all_of,
    in_turns,
    median,
    scenario_main,
    use_gcs_emulator,
    within_rss,
)

SIZE_FULL = 1_000_000_000
SIZE_QUICK = 250_000_000
RSS_LIMIT_MB = 64.0
BUCKET = "offsite-sftp-bench"
OBJECT = "bench/sftp/blob.bin"
TARGET_SFTP, TARGET_RCLONE = 0.9, 1.2
CIPHER = "aes128-gcm@openssh.com"  # what offsite negotiates first (connect.FAST_CIPHERS); every side uses it
# OpenSSH sftp's settings tried; the faster median is the peer. Defaults: since OpenSSH 8.6 sftp
# sizes its requests from the server's limits@openssh.com (256 KiB here) with 64 in flight.
OPENSSH_SETTINGS = {"openssh": (), "openssh-R256": ("-R", "256")}


# ---- the offsite child -----------------------------------------------------------------------


def offsite_transfer(
    gcs_url: str,
    port: int,
    user: str,
    key: str,
    known_hosts: str,
    directory: str,
    remote: str,
    connections: int,
    local_file: str | None = None,
    ssh_client: str = "auto",
) -> dict[str, Any]:
    """Child: one delivery with SftpDestination (what transfer_sftp runs per partner), from the
    GCS object as transfer_sftp reads it, or from ``local_file`` (the like-for-like case);
    ``ssh_client`` as the partner setting (auto: OpenSSH's ssh, which is on this machine)."""
    use_gcs_emulator(gcs_url)
    from shared.config import SftpPartner
    from shared.delivery.operation import PREFETCH_BLOCKS
    from shared.destinations.sftp.destination import SftpDestination
    from shared.gcp import gcs
    from shared.gcp.reader import ObjectReader
    from shared.secrets import Secret

    partner = SftpPartner(
        host="127.0.0.1",
        port=port,
        username=user,
        private_key=Secret(f"file:{key}"),
        known_hosts=Secret(f"file:{known_hosts}"),
        directory=directory,
        connections_per_file=connections,
        max_sessions=max(4, connections),
        ssh_client=ssh_client,
    )
    info = gcs.stat(BUCKET, OBJECT)
    assert info is not None
    destination = SftpDestination("bench", partner)
    source = open(local_file, "rb") if local_file else ObjectReader(info, prefetch=PREFETCH_BLOCKS)
    mark_start()
    started = time.perf_counter()
    result = destination.put(remote, source, info.size)
    seconds = time.perf_counter() - started
    source.close()
    destination.close()
    return {"seconds": seconds, "sha1": result.sha1, "status": result.status, "client": _client_used(destination)}


def _client_used(destination: Any) -> str:
    from shared.destinations.sftp.openssh import uses_openssh

    return "openssh" if uses_openssh(destination.partner) else "paramiko"


# ---- the servers and the peers -------------------------------------------------------------------


class _Setup:
    """fake-gcs-server, a private sshd with its login user, the object and the same bytes on disk."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.dir = Path(tempfile.mkdtemp(prefix="offsite-sftp-bench-"))
        self.dir.chmod(0o755)
        self.gcs = FakeGcs(self.dir)
        self.sshd: Any = None
        self.clients: dict[str, str] = {}  # offsite side -> the SSH client its child used
        self.cpu_per_gb: dict[str, list[float]] = {}  # side -> the machine's busy CPU-s per GB sent, each run

    def __enter__(self) -> Self:
        from tests.sftp.sshd_server import Sshd, ensure_user, user_dir

        self.gcs_url = self.gcs.start().url
        user = ensure_user()
        self.sshd = Sshd(user).start()
        self.remote_dir = user_dir(user, "bench")
        self.known_hosts = self.dir / "known_hosts"
        self.known_hosts.write_text(self.sshd.known_hosts)
        self.local_file = self.dir / "blob.bin"
        self.sha1 = self.gcs.seed(BUCKET, OBJECT, self.size, copy_to=self.local_file)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.sshd is not None:
            self.sshd.cleanup()
            shutil.rmtree(self.remote_dir, ignore_errors=True)
        self.gcs.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def run(self, name: str, argv: list[str], **kwargs: Any) -> ChildRun:
        """One side's transfer in a child (``run_child``), its CPU counted: the whole machine's
        over the transfer (client, ``ssh``, sshd, sftp-server, fake-gcs-server: every side's
        full cost here), per GB sent."""
        child = run_child(argv, **kwargs)
        self.cpu_per_gb.setdefault(name.rsplit("-", 1)[0], []).append(child.machine_cpu_s / (self.size / 1e9))
        return child

    def landed(self, name: str, check_sha1: bool) -> Path:
        path = self.remote_dir / name
        if path.stat().st_size != self.size:
            raise RuntimeError(f"{path}: {path.stat().st_size} bytes, expected {self.size}")
        if check_sha1:
            digest = hashlib.sha1()
            with path.open("rb") as fh:
                while block := fh.read(8 * 1024 * 1024):
                    digest.update(block)
            if digest.hexdigest() != self.sha1:
                raise RuntimeError(f"{path}: SHA-1 {digest.hexdigest()}, expected {self.sha1}")
        return path

    def rclone_env(self) -> dict[str, str]:
        return {
            **os.environ,
            "RCLONE_CONFIG_GCS_TYPE": "google cloud storage",
            "RCLONE_CONFIG_GCS_ENDPOINT": f"{self.gcs_url}/storage/v1/",
            "RCLONE_CONFIG_GCS_ANONYMOUS": "true",
            "RCLONE_CONFIG_DST_TYPE": "sftp",
            "RCLONE_CONFIG_DST_HOST": "127.0.0.1",
            "RCLONE_CONFIG_DST_PORT": str(self.sshd.port),
            "RCLONE_CONFIG_DST_USER": self.sshd.user.name,
            "RCLONE_CONFIG_DST_KEY_FILE": str(self.sshd.client_key),
            "RCLONE_CONFIG_DST_KNOWN_HOSTS_FILE": str(self.known_hosts),
            "RCLONE_CONFIG_DST_DISABLE_HASHCHECK": "true",  # internal-sftp runs no md5sum; offsite does not ask either
            "RCLONE_CONFIG_DST_CIPHERS": CIPHER,
            # rclone's documented best for OpenSSH servers: 255k requests (default 32k), 64 in flight.
            "RCLONE_CONFIG_DST_CHUNK_SIZE": "255k",
            "RCLONE_CONFIG_DST_CONCURRENCY": "64",
        }


def _offsite(
    setup: _Setup, name: str, connections: int, check: bool, local: bool = False, ssh_client: str = "auto"
) -> tuple[float, float]:
    argv = python_child(
        "sftp_bench:offsite_transfer",
        gcs_url=setup.gcs_url,
        port=setup.sshd.port,
        user=setup.sshd.user.name,
        key=str(setup.sshd.client_key),
        known_hosts=str(setup.known_hosts),
        directory=str(setup.remote_dir),
        remote=name,
        connections=connections,
        local_file=str(setup.local_file) if local else None,
        ssh_client=ssh_client,
    )
    child = setup.run(name, argv, cwd=REPO_ROOT)
    setup.clients[name.rsplit("-", 1)[0]] = child.result.get("client", "?")
    if child.result.get("sha1") != setup.sha1:
        raise RuntimeError(f"offsite streamed SHA-1 {child.result.get('sha1')}, the object's is {setup.sha1}")
    setup.landed(name, check).unlink()
    return setup.size / MB / child.seconds, child.rss_over_baseline / MB


def _openssh(setup: _Setup, name: str, check: bool, options: tuple[str, ...] = ()) -> tuple[float, float]:
    batch = setup.dir / "batch"
    batch.write_text(f"put {setup.local_file} {setup.remote_dir / name}\n")
    argv = ["sftp", "-q", "-b", str(batch), "-i", str(setup.sshd.client_key), "-P", str(setup.sshd.port)]
    argv += ["-c", CIPHER, *options]
    argv += ["-o", f"UserKnownHostsFile={setup.known_hosts}", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"]
    child = setup.run(name, [*argv, f"{setup.sshd.user.name}@127.0.0.1"])
    setup.landed(name, check).unlink()
    return setup.size / MB / child.seconds, child.peak_rss / MB


def _library(setup: _Setup, name: str, check: bool, library: str) -> tuple[float, float]:
    """Another Python SSH library's upload of the local file (bench/sftp_libraries.py)."""
    common = {"port": setup.sshd.port, "user": setup.sshd.user.name, "key": str(setup.sshd.client_key)}
    remote = str(setup.remote_dir / name)
    if library == "asyncssh":
        argv = python_child(
            "sftp_libraries:asyncssh_transfer",
            **common,
            known_hosts=str(setup.known_hosts),
            local_file=str(setup.local_file),
            remote=remote,
        )
    else:
        argv = sftp_libraries.ssh2_child(**common, local_file=str(setup.local_file), remote=remote)
    child = setup.run(name, argv, cwd=REPO_ROOT)
    setup.landed(name, check).unlink()
    return setup.size / MB / child.seconds, child.rss_over_baseline / MB


def _rclone(setup: _Setup, name: str, check: bool) -> tuple[float, float]:
    argv = ["rclone", "copyto", f"gcs:{BUCKET}/{OBJECT}", f"dst:{setup.remote_dir / name}"]
    child = setup.run(name, argv, env=setup.rclone_env())
    setup.landed(name, check).unlink()
    return setup.size / MB / child.seconds, child.peak_rss / MB


def run(quick: bool, runs: int = MIN_RUNS) -> list[dict[str, Any]]:
    """Every side ``runs`` times, in turns; rows (offsite vs each peer) as dicts for bench/run.py.

    (a) local file → sshd: offsite's SFTP code path vs OpenSSH sftp, same cipher, OpenSSH's
    best of :data:`OPENSSH_SETTINGS`; (b) GCS emulator → sshd: transfer_sftp's path vs rclone.
    """
    size = SIZE_QUICK if quick else SIZE_FULL
    sides: dict[str, Any] = {
        "offsite-local": lambda s, n, c: _offsite(s, n, 1, c, local=True),
        "offsite-local-paramiko": lambda s, n, c: _offsite(s, n, 1, c, local=True, ssh_client="paramiko"),
        "offsite": lambda s, n, c: _offsite(s, n, 1, c),
        "offsite-2": lambda s, n, c: _offsite(s, n, 2, c),
        "rclone": _rclone,
        "asyncssh-local": lambda s, n, c: _library(s, n, c, "asyncssh"),
        "ssh2-local": lambda s, n, c: _library(s, n, c, "ssh2"),
    }
    for side, options in OPENSSH_SETTINGS.items():
        sides[side] = lambda s, n, c, options=options: _openssh(s, n, c, options)
    with _Setup(size) as setup:
        speeds, rss = in_turns(list(sides), runs, lambda side, i: sides[side](setup, f"{side}-{i}.bin", i == 0))
    best_openssh = max(OPENSSH_SETTINGS, key=lambda side: median(speeds[side]))
    cpu = setup.cpu_per_gb
    settings = " ".join(OPENSSH_SETTINGS[best_openssh]) or "default -B/-R"
    notes = _notes(setup, speeds, rss, best_openssh)
    rows = []
    for offsite, peer, case, peer_name, target in (
        ("offsite-local", best_openssh, "local file→sshd", f"OpenSSH sftp -b ({settings})", TARGET_SFTP),
        ("offsite", "rclone", "GCS→sshd", "rclone copyto from the GCS emulator", TARGET_RCLONE),
    ):
        row = Row(
            scenario="sftp",
            case=f"{size / 1e9:g} GB {case} vs {peer.split('-')[0]}",
            unit="MB/s",
            offsite=median(speeds[offsite]),
            peer=median(speeds[peer]),
            peer_name=peer_name,
            target=f">= {target:g}x {peer.split('-')[0]}, RSS <= baseline + {RSS_LIMIT_MB:g} MB",
            peak_rss_mb=max(rss[offsite]),
            rss_limit_mb=RSS_LIMIT_MB,
            runs=len(speeds[offsite]),
            notes=notes,
            samples={f"{k}_mb_s": v for k, v in speeds.items()}
            | {f"{k}_rss_mb": v for k, v in rss.items()}
            | {f"{k}_cpu_s_per_gb": v for k, v in cpu.items()},
        )
        row.passed = all_of(row.ratio is not None and row.ratio >= target, within_rss(row.peak_rss_mb, RSS_LIMIT_MB))
        rows.append(row.to_dict())
    return rows


def _notes(setup: _Setup, speeds: dict[str, list[float]], rss: dict[str, list[float]], best_openssh: str) -> str:
    """What the two rows leave out: the other sides' speeds, the peers' RSS and every side's CPU."""
    cpu = setup.cpu_per_gb
    tried = ", ".join(f"{k} {median(speeds[k]):.0f} MB/s" for k in OPENSSH_SETTINGS)
    return (
        f"cipher {CIPHER} on every side; offsite's SSH work by {setup.clients.get('offsite-local', '?')} "
        f"(ssh_client auto); with ssh_client paramiko, local file: "
        f"{median(speeds['offsite-local-paramiko']):.0f} MB/s (+{max(rss['offsite-local-paramiko']):.0f} MB); "
        f"OpenSSH settings tried: {tried}; offsite from GCS with "
        f"connections_per_file=2: {median(speeds['offsite-2']):.0f} MB/s (+{max(rss['offsite-2']):.0f} MB); "
        f"peers' peak RSS: sftp {max(rss[best_openssh]):.0f} MB, rclone {max(rss['rclone']):.0f} MB; "
        f"other Python SSH libraries, local file, same cipher (bench/sftp_libraries.py): asyncssh "
        f"{median(speeds['asyncssh-local']):.0f} MB/s, ssh2-python (libssh2) {median(speeds['ssh2-local']):.0f} MB/s; "
        f"the machine's busy CPU-s per GB sent (every process: client, ssh, sshd, sftp-server, GCS emulator): "
        f"local file offsite {median(cpu['offsite-local']):.2f}, OpenSSH {median(cpu[best_openssh]):.2f}; "
        f"from GCS offsite {median(cpu['offsite']):.2f}, rclone {median(cpu['rclone']):.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    return scenario_main(run, __doc__, SIZE_QUICK, SIZE_FULL, argv)


if __name__ == "__main__":
    sys.exit(main())
