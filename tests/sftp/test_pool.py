"""A warm instance's pooled SSH sessions: reused, but never past a host-key change or their age."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from shared.destinations.sftp import pool as pool_module
from shared.destinations.sftp.destination import SftpDestination
from shared.destinations.sftp.pool import SessionPool
from shared.errors import PermanentError
from tests.sftp.conftest import make_partner
from tests.sftp.sshd_server import Sshd, keygen


def put(dest: SftpDestination, name: str) -> None:
    data = os.urandom(10_000)
    dest.put(name, io.BytesIO(data), len(data))


def test_a_host_key_change_under_a_warm_pool_refuses_the_next_delivery(private_sshd: Sshd, workdir: Path) -> None:
    partner = make_partner(private_sshd, workdir)
    pool = SessionPool("warm", partner, recheck_s=0.0)
    dest = SftpDestination("warm", partner, pool=pool)
    put(dest, "before.bin")  # a session is now idle in the pool, connected with the old key
    (private_sshd.host_key).unlink()
    private_sshd.host_key.with_suffix(".pub").unlink()
    keygen(private_sshd.host_key, "ed25519")  # the server gets a new host key...
    private_sshd.restart()  # ...and OpenSSH keeps the established session alive across the restart
    with pytest.raises(PermanentError, match="HOST KEY MISMATCH"):
        put(dest, "after.bin")
    assert not (workdir / "after.bin").exists()
    pool.close()


def test_an_unchanged_key_reuses_the_session(private_sshd: Sshd, workdir: Path) -> None:
    partner = make_partner(private_sshd, workdir)
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
