"""Fixtures of the SFTP tests: real OpenSSH sshd processes (one per worker, plus private ones for
tests that break them), the stack's asyncssh server for compatibility, partner configs, and a
fresh server directory per test.

sshd serves the dedicated user ``offsite-sftptest`` (created once per machine, with a password
and a shell) so permissions are real although the tests run as root.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.config import SftpPartner
from shared.secrets import Secret
from tests.sftp.sshd_server import SftpUser, Sshd, ensure_user, user_dir


@pytest.fixture(scope="session")
def sftp_user() -> SftpUser:
    return ensure_user()


@pytest.fixture(scope="session")
def sshd(sftp_user: SftpUser) -> Iterator[Sshd]:
    """A long-lived sshd (ForceCommand internal-sftp: SFTP only, like most partners)."""
    server = Sshd(sftp_user).start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def shell_sshd(sftp_user: SftpUser) -> Iterator[Sshd]:
    """An sshd whose account has a shell, so ``sha1sum`` runs over exec."""
    server = Sshd(sftp_user, force_internal_sftp=False).start()
    yield server
    server.cleanup()


@pytest.fixture
def private_sshd(sftp_user: SftpUser) -> Iterator[Sshd]:
    """An sshd of this test alone (to restart, or to start with another host key)."""
    server = Sshd(sftp_user).start()
    yield server
    server.cleanup()


@pytest.fixture
def workdir(sftp_user: SftpUser) -> Iterator[Path]:
    """A fresh directory owned by the login user; the partner directory of one test."""
    path = user_dir(sftp_user, "t")
    yield path
    shutil.rmtree(path, ignore_errors=True)


PartnerFactory = Callable[..., SftpPartner]


def make_partner(server: Sshd, directory: Path | str, **overrides: Any) -> SftpPartner:
    """Key auth, known_hosts pinned to the server's key; ``overrides`` replace any field."""
    fields: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": server.port,
        "username": server.user.name,
        "private_key": Secret(f"file:{server.client_key}"),
        "known_hosts": Secret(server.known_hosts),
        "directory": str(directory),
    }
    fields.update(overrides)
    return SftpPartner(**fields)


@pytest.fixture
def partner(sshd: Sshd, workdir: Path) -> PartnerFactory:
    return lambda **overrides: make_partner(sshd, workdir, **overrides)


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]
