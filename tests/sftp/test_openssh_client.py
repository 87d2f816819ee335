"""Sessions through OpenSSH's ``ssh`` (``ssh_client``): chosen when it can be, trusted exactly as
the paramiko path trusts, no key left on disk, failures named; against a real sshd."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from devstack.throttle import ThrottledProxy
from shared.config import SftpPartner
from shared.destinations.sftp import openssh
from shared.destinations.sftp.connect import sftp_errors
from shared.destinations.sftp.hashing import remote_sha1
from shared.destinations.sftp.openssh import SshChannel
from shared.destinations.sftp.session import open_session
from shared.errors import ConfigError, PermanentError, TransientError
from shared.secrets import Secret
from tests.sftp.conftest import PartnerFactory, make_partner
from tests.sftp.sshd_server import PASSWORD, Sshd, keygen

ROOT = Path(__file__).resolve().parents[2]


def _channel(session: object) -> SshChannel:
    channel = getattr(session, "ssh", None)
    assert isinstance(channel, SshChannel)
    return channel


def test_auto_uses_ssh_for_a_key_login_and_paramiko_otherwise(partner: PartnerFactory) -> None:
    chosen = {}
    for label, fields in {
        "key": {},
        "password": {"private_key": None, "password": Secret(PASSWORD)},
        "sha1sum": {"hashing": "sha1sum"},
        "forced": {"ssh_client": "paramiko"},
    }.items():
        session = open_session("acme", partner(**fields))
        try:
            chosen[label] = (session.client, session.cipher)
        finally:
            session.close()
    assert chosen == {
        "key": ("openssh", "aes128-gcm@openssh.com"),
        "password": ("paramiko", "aes128-gcm@openssh.com"),
        "sha1sum": ("openssh", "aes128-gcm@openssh.com"),  # commands share the ssh connection
        "forced": ("paramiko", "aes128-gcm@openssh.com"),
    }


def test_the_key_leaves_the_disk_once_logged_in_and_the_rest_at_close(partner: PartnerFactory) -> None:
    session = open_session("acme", partner(ssh_client="openssh"))
    channel = _channel(session)
    try:
        assert not (channel.workdir / "id").exists()
        assert (channel.workdir / "known_hosts").read_text().count("\n") == 1
        assert session.sftp.listdir(".") is not None
        assert session.alive()
    finally:
        session.close()
    assert not channel.workdir.exists()
    assert channel.process.poll() is not None  # ssh ended with the session


def test_a_passphrase_protected_key_logs_in_without_a_prompt(private_sshd: Sshd, workdir: Path, tmp_path: Path) -> None:
    locked = keygen(tmp_path / "locked", passphrase="open sesame")
    private_sshd.authorize(locked.with_suffix(".pub"))
    partner = make_partner(
        private_sshd,
        workdir,
        private_key=Secret(f"file:{locked}"),
        private_key_passphrase=Secret("open sesame"),
        ssh_client="openssh",
    )
    session = open_session("acme", partner)
    try:
        assert session.client == "openssh"
    finally:
        session.close()


def test_a_changed_host_key_is_refused_before_ssh_is_started(private_sshd: Sshd, workdir: Path, tmp_path: Path) -> None:
    impostor = keygen(tmp_path / "impostor").with_suffix(".pub").read_text().split()
    stale = f"[127.0.0.1]:{private_sshd.port} {impostor[0]} {impostor[1]}\n"
    partner = make_partner(private_sshd, workdir, known_hosts=Secret(stale), ssh_client="openssh")
    with pytest.raises(PermanentError, match="HOST KEY MISMATCH"):
        open_session("acme", partner)
    log = private_sshd.log_text()
    assert "Accepted" not in log and "Failed" not in log and "publickey" not in log


def test_a_refused_key_is_a_permanent_error_naming_the_setting(
    private_sshd: Sshd, workdir: Path, tmp_path: Path
) -> None:
    stranger = keygen(tmp_path / "stranger")
    partner = make_partner(private_sshd, workdir, private_key=Secret(f"file:{stranger}"), ssh_client="openssh")
    with pytest.raises(PermanentError, match=r"ssh-ed25519 key refused\); check destinations.sftp.acme.private_key"):
        open_session("acme", partner)


def test_a_lost_ssh_process_is_a_transient_error_and_a_dead_session(partner: PartnerFactory) -> None:
    session = open_session("acme", partner(ssh_client="openssh"))
    try:
        os.kill(_channel(session).process.pid, signal.SIGKILL)
        _channel(session).process.wait(timeout=10)
        assert not session.alive()
        with pytest.raises(TransientError, match="sftp:acme: listing"), sftp_errors("acme", "listing"):
            session.sftp.listdir(".")
    finally:
        session.close()


def test_sha1sum_shares_the_logged_in_connection_and_a_lost_one_is_transient(shell_sshd: Sshd, workdir: Path) -> None:
    """The key is gone from disk once logged in, so sha1sum can only run over the master's
    connection; once ssh is gone, asking again is a transient error, not a config one."""
    (workdir / "f.bin").write_bytes(b"abc")
    session = open_session("acme", make_partner(shell_sshd, workdir, hashing="sha1sum", ssh_client="openssh"))
    try:
        assert not (_channel(session).workdir / "id").exists()
        path = str(workdir / "f.bin")
        assert remote_sha1(session, "sha1sum", [path]) == {path: hashlib.sha1(b"abc").hexdigest()}
        os.kill(_channel(session).process.pid, signal.SIGKILL)
        _channel(session).process.wait(timeout=10)
        with pytest.raises(TransientError, match="sftp:acme: hashing"):
            remote_sha1(session, "sha1sum", [path])
    finally:
        session.close()


def test_settings_ssh_cannot_honour_are_refused(sshd: Sshd, workdir: Path) -> None:
    with pytest.raises(ValueError, match=re.escape("'openssh' logs in with private_key only")):
        make_partner(sshd, workdir, private_key=None, password=Secret(PASSWORD), ssh_client="openssh")
    with pytest.raises(ConfigError, match="ciphers: .*not support \\(rot13\\)"):
        open_session("acme", make_partner(sshd, workdir, ciphers=("rot13",), ssh_client="openssh"))


def test_without_a_usable_ssh_auto_falls_back_and_openssh_says_why(
    partner: PartnerFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no ssh here
    openssh.ssh_binary.cache_clear()
    try:
        auto: SftpPartner = partner()
        session = open_session("acme", auto)
        try:
            assert session.client == "paramiko"
        finally:
            session.close()
        with pytest.raises(ConfigError, match="ssh_client: 'openssh' needs OpenSSH's ssh on PATH"):
            open_session("acme", partner(ssh_client="openssh"))
    finally:
        monkeypatch.undo()
        openssh.ssh_binary.cache_clear()


CHILD = """
import sys
from shared.config import SftpPartner
from shared.destinations.sftp.session import open_session
session = open_session("acme", SftpPartner.model_validate_json(sys.argv[1]))
print(session.ssh.process.pid, flush=True)
remote = session.sftp.open(sys.argv[2], "w")
remote.set_pipelined(True)
while True:
    remote.write(bytes(1_000_000))
"""


def test_ssh_ends_with_the_process_that_started_it_even_when_killed(
    sshd: Sshd, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copier killed mid-upload leaves no ssh draining its buffered bytes into the file
    (tests/collect/test_crash.py: the redelivery would find "another writer")."""
    proxy = ThrottledProxy(sshd.port, bytes_per_s=1_000_000)  # slow: megabytes wait in the buffers
    # The child's session folder goes in a temp folder of its own: another test process opening
    # its first session would sweep the orphan from the shared one before this test looks. Short,
    # so the mux socket's path stays within a unix socket's limit.
    own_tmp = Path(tempfile.mkdtemp(prefix="ot", dir="/tmp"))
    try:
        known = f"[127.0.0.1]:{proxy.port} {' '.join(sshd.host_public_key.split()[:2])}\n"
        chosen = make_partner(sshd, workdir, port=proxy.port, known_hosts=Secret(known), ssh_client="openssh")
        fields = chosen.model_dump(mode="json") | {
            "private_key": chosen.private_key.reveal(),  # type: ignore[union-attr]
            "known_hosts": known,
        }
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, json.dumps(fields), str(workdir / "x.bin")],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(own_tmp)},
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        ssh_pid = int(child.stdout.readline())
        time.sleep(1.0)  # the buffers fill
        assert _running(ssh_pid)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        time.sleep(0.5)
        assert not _running(ssh_pid)
        # SIGKILL: neither close() nor atexit ran, so its session folder is left; the next
        # process to open a session removes the folders of processes that are gone.
        orphans = list(own_tmp.glob(f"{openssh.WORKDIR_PREFIX}{child.pid}-*"))
        assert len(orphans) == 1
        monkeypatch.setattr(tempfile, "tempdir", str(own_tmp))
        openssh.sweep_orphan_workdirs.cache_clear()
        assert openssh.sweep_orphan_workdirs() >= 1
        assert not orphans[0].exists()
    finally:
        proxy.close()
        shutil.rmtree(own_tmp, ignore_errors=True)


EXITING_CHILD = """
import sys
from shared.config import SftpPartner
from shared.destinations.sftp.session import open_session
session = open_session("acme", SftpPartner.model_validate_json(sys.argv[1]))
print(session.ssh.workdir, flush=True)
"""  # exits without closing the session


def test_a_session_left_open_at_exit_takes_its_folder_along(sshd: Sshd, workdir: Path) -> None:
    chosen = make_partner(sshd, workdir, ssh_client="openssh")
    fields = chosen.model_dump(mode="json") | {
        "private_key": chosen.private_key.reveal(),  # type: ignore[union-attr]
        "known_hosts": chosen.known_hosts.reveal(),  # type: ignore[union-attr]
    }
    done = subprocess.run(
        [sys.executable, "-c", EXITING_CHILD, json.dumps(fields)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    folder = Path(done.stdout.strip())
    assert folder.name.startswith(f"{openssh.WORKDIR_PREFIX}")
    assert not folder.exists()


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_send_parts_delivers_every_byte_in_order_across_partial_sends(tmp_path: Path) -> None:
    """A WRITE's header and data go out with sendmsg; a send buffer smaller than the parts and a
    socket timeout make the kernel take them in pieces, and nothing may be lost or reordered."""
    import socket
    import threading

    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    ours.settimeout(5.0)
    parts: list[bytes | memoryview] = [b"head" * 3, memoryview(os.urandom(300_000))[7:], os.urandom(70_001)]
    expected = b"".join(bytes(p) for p in parts)
    received = bytearray()

    def drain() -> None:
        while len(received) < len(expected):
            time.sleep(0.001)  # a slow reader: the writer's buffer fills, sends come back short
            received.extend(theirs.recv(8192))

    reader = threading.Thread(target=drain)
    reader.start()
    channel = SshChannel(ours, subprocess.Popen(["true"]), tmp_path / "ssh")
    channel.send_parts(parts)
    reader.join(timeout=30)
    channel.close()
    assert bytes(received) == expected


def test_a_long_temp_folder_does_not_break_the_mux_socket(
    shell_sshd: Sshd, workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ssh binds ``ControlPath`` plus 17 characters as a unix socket (at most 107 bytes on Linux,
    103 on macOS); under a temp folder too long for that the session folder goes to /tmp."""
    long_tmp = tmp_path / ("t" * 60) / ("u" * 60)
    long_tmp.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(long_tmp))
    session = open_session("acme", make_partner(shell_sshd, workdir, hashing="sha1sum", ssh_client="openssh"))
    try:
        channel = _channel(session)
        assert channel.workdir.parent == Path("/tmp")
        with session.sftp.open("long-tmp.bin", "w") as remote:
            remote.write(b"proof")
        path = session.sftp.normalize("long-tmp.bin")
        assert remote_sha1(session, "sha1sum", [path]) == {path: hashlib.sha1(b"proof").hexdigest()}  # mux socket
    finally:
        session.close()
