"""SFTP of the stack (OpenSSH sshd, asyncssh fallback) and the standalone asyncssh server."""

from __future__ import annotations

import asyncio
import getpass
import io
import os
import pwd
from collections.abc import Callable
from pathlib import Path

import paramiko
import pytest

from devstack.sftpserver import AsyncSshServer
from devstack.sshd import SFTP_USER, generate_key, public_key
from devstack.state import StackInfo


def _connect(host: str, port: int, user: str, key: Path, known_hosts: Path) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())  # pinning: never auto-accept
    client.connect(
        host, port=port, username=user, key_filename=str(key), look_for_keys=False, allow_agent=False, timeout=30
    )
    return client


def _stack_client(info: StackInfo, known_hosts: Path | None = None) -> paramiko.SSHClient:
    s = info.sftp
    return _connect(s.host, s.port, s.username, s.key_path, known_hosts or s.known_hosts_path)


def test_paramiko_lists_the_sftp_root_with_the_host_key_pinned(bare_stack: StackInfo) -> None:
    (bare_stack.sftp.directory / "listed.txt").write_text("seen")
    with _stack_client(bare_stack) as client:
        sftp = client.open_sftp()
        assert sftp.normalize(".") == str(bare_stack.sftp.directory)
        assert "listed.txt" in sftp.listdir(str(bare_stack.sftp.directory))
        with sftp.open("upload.partial", "wb") as fh:
            fh.write(b"data")
        sftp.posix_rename("upload.partial", "upload.bin")  # atomic replace, as deliveries do
        assert (bare_stack.sftp.directory / "upload.bin").read_bytes() == b"data"


def test_known_hosts_and_login_user(bare_stack: StackInfo) -> None:
    line = bare_stack.sftp.known_hosts_path.read_text().strip()
    assert line == f"[127.0.0.1]:{bare_stack.sftp.port} {public_key(bare_stack.sftp.host_key_path)}"
    assert line.split()[1] == "ssh-ed25519"
    assert bare_stack.sftp.backend == "openssh"
    expected_user = SFTP_USER if os.geteuid() == 0 else getpass.getuser()
    assert bare_stack.sftp.username == expected_user
    assert pwd.getpwuid(bare_stack.sftp.directory.stat().st_uid).pw_name == expected_user


def test_an_unknown_host_key_is_refused(bare_stack: StackInfo, tmp_path: Path) -> None:
    other = tmp_path / "other_host_key"
    generate_key(other, "impostor")
    wrong = tmp_path / "known_hosts_wrong"
    wrong.write_text(f"[127.0.0.1]:{bare_stack.sftp.port} {public_key(other)}\n")
    with pytest.raises(paramiko.BadHostKeyException):
        _stack_client(bare_stack, wrong)
    empty = tmp_path / "known_hosts_empty"
    empty.write_text("")
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        _stack_client(bare_stack, empty)


def test_openssh_offers_sftp_only(bare_stack: StackInfo) -> None:
    with _stack_client(bare_stack) as client:
        _, stdout, _ = client.exec_command("id")
        assert b"uid=" not in stdout.read()


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    user_key, host_key = tmp_path / "id_ed25519", tmp_path / "host_key"
    generate_key(user_key, "user")
    generate_key(host_key, "host")
    return user_key, host_key


@pytest.mark.parametrize("posix_rename", [False, True])
def test_standalone_asyncssh_server(tmp_path: Path, keys: tuple[Path, Path], posix_rename: bool) -> None:
    user_key, host_key = keys
    served = tmp_path / "served"
    served.mkdir()
    (served / "hello.txt").write_text("hi")
    with AsyncSshServer(
        served, 0, authorized_key=user_key.with_suffix(".pub"), host_key=host_key, posix_rename=posix_rename
    ) as server:
        known = tmp_path / "known_hosts"
        known.write_text(server.known_hosts_line() + "\n")
        with _connect("127.0.0.1", server.port, "anyone", user_key, known) as client:
            sftp = client.open_sftp()
            assert sftp.listdir("/") == ["hello.txt"]  # chrooted at the served directory
            sftp.putfo(io.BytesIO(b"new"), "/a.partial")
            if posix_rename:
                sftp.posix_rename("/a.partial", "/hello.txt")
                assert (served / "hello.txt").read_text() == "new"
            else:
                with pytest.raises(OSError):
                    sftp.posix_rename("/a.partial", "/hello.txt")
                sftp.rename("/a.partial", "/b.txt")  # plain rename still works
                assert sorted(os.listdir(served)) == ["b.txt", "hello.txt"]
            with pytest.raises(paramiko.SSHException):
                client.exec_command("sha1sum /hello.txt")  # no exec: no server-side hashing


def test_asyncssh_server_refuses_other_keys(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    user_key, host_key = keys
    stranger = tmp_path / "stranger"
    generate_key(stranger, "stranger")
    with AsyncSshServer(tmp_path, 0, authorized_key=user_key.with_suffix(".pub"), host_key=host_key) as server:
        known = tmp_path / "known_hosts"
        known.write_text(server.known_hosts_line() + "\n")
        with pytest.raises(paramiko.AuthenticationException):
            _connect("127.0.0.1", server.port, "anyone", stranger, known)


def test_stopping_the_asyncssh_server_ends_its_open_sessions(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    """A session still open at stop() is cancelled and awaited, not left pending on a closed loop."""
    user_key, host_key = keys
    server = AsyncSshServer(tmp_path, 0, authorized_key=user_key.with_suffix(".pub"), host_key=host_key).start()
    loop, thread = server._loop, server._thread
    assert loop is not None and thread is not None
    known = tmp_path / "known_hosts"
    known.write_text(server.known_hosts_line() + "\n")
    with _connect("127.0.0.1", server.port, "anyone", user_key, known) as client:
        client.open_sftp().listdir("/")  # a session, open while the server stops
        server.stop()
        assert not thread.is_alive()
        assert [task for task in asyncio.all_tasks(loop) if not task.done()] == []


def test_stack_with_the_asyncssh_backend(stack_factory: Callable[..., StackInfo]) -> None:
    info = stack_factory(functions=False, without=("bigquery", "box", "drive", "webhook"), sftp_backend="asyncssh")
    assert info.sftp.backend == "asyncssh"
    assert "asyncssh" in info.component("sftp").note
    with _stack_client(info) as client:
        sftp = client.open_sftp()
        assert sftp.normalize(".") == str(info.sftp.directory)
        with sftp.open(str(info.sftp.directory / "f.partial"), "wb") as fh:
            fh.write(b"x")
        sftp.posix_rename(str(info.sftp.directory / "f.partial"), str(info.sftp.directory / "f"))
        assert (info.sftp.directory / "f").read_bytes() == b"x"
