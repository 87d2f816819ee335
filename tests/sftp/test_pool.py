"""A warm instance's pooled SSH sessions: reused, but never past a host-key change or their age."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.destinations.sftp import pool as pool_module
from shared.destinations.sftp.destination import SftpDestination
from shared.destinations.sftp.pool import SessionPool
from shared.errors import PermanentError
from tests.sftp.conftest import make_partner
from tests.sftp.sshd_server import SftpUser, Sshd, keygen


def put(dest: SftpDestination, name: str) -> None:
    data = os.urandom(10_000)
    dest.put(name, io.BytesIO(data), len(data))


@pytest.fixture(params=["ed25519", "rsa"])
def keyed_sshd(request: pytest.FixtureRequest, sftp_user: SftpUser) -> Iterator[Sshd]:
    """An sshd of this test alone with an Ed25519 or an RSA host key (an RSA key signs as
    rsa-sha2-512/256: the probe must ask for those, paramiko refuses plain 'ssh-rsa')."""
    server = Sshd(sftp_user, host_key_type=request.param).start()
    yield server
    server.cleanup()


def new_host_key(server: Sshd, kind: str) -> None:
    """The server gets a new host key of ``kind``; OpenSSH keeps established sessions across the restart."""
    server.host_key.unlink()
    server.host_key.with_suffix(".pub").unlink()
    keygen(server.host_key, kind, bits=2048 if kind == "rsa" else None)
    server.restart()


def test_a_host_key_change_under_a_warm_pool_refuses_the_next_delivery(keyed_sshd: Sshd, workdir: Path) -> None:
    partner = make_partner(keyed_sshd, workdir)
    pool = SessionPool("warm", partner, recheck_s=0.0)
    dest = SftpDestination("warm", partner, pool=pool)
    put(dest, "before.bin")  # a session is now idle in the pool, connected with the old key
    new_host_key(keyed_sshd, keyed_sshd.host_key_type)
    with pytest.raises(PermanentError, match="HOST KEY MISMATCH"):
        put(dest, "after.bin")
    assert not (workdir / "after.bin").exists()
    pool.close()


def test_a_host_key_of_another_type_under_a_warm_pool_refuses_the_next_delivery(
    private_sshd: Sshd, workdir: Path
) -> None:
    """The probe asks for the pooled session's key type; a server that has no such key any more
    (its new key is RSA) is a changed key, not an unreachable server to reuse the session of."""
    partner = make_partner(private_sshd, workdir)
    pool = SessionPool("warm", partner, recheck_s=0.0)
    dest = SftpDestination("warm", partner, pool=pool)
    put(dest, "before.bin")
    new_host_key(private_sshd, "rsa")
    with pytest.raises(PermanentError, match="HOST KEY MISMATCH.*offered ssh-rsa"):
        put(dest, "after.bin")
    assert not (workdir / "after.bin").exists()
    pool.close()


def test_an_unchanged_key_reuses_the_session(keyed_sshd: Sshd, workdir: Path) -> None:
    partner = make_partner(keyed_sshd, workdir)
    pool = SessionPool("same", partner, recheck_s=0.0)
    dest = SftpDestination("same", partner, pool=pool)
    put(dest, "one.bin")
    first = pool.acquire()
    pool.release(first)
    put(dest, "two.bin")
    again = pool.acquire()
    assert again is first  # probed, same key: reused
    pool.release(again)
    pool.close()


def test_idle_sessions_expire(private_sshd: Sshd, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    partner = make_partner(private_sshd, workdir)
    pool = SessionPool("idle", partner)
    first = pool.acquire()
    pool.release(first)
    monkeypatch.setattr(pool_module, "IDLE_TIMEOUT_S", -1.0)  # every idle session is now too old
    second = pool.acquire()
    assert second is not first and not first.alive()
    pool.release(second)
    pool.close()
