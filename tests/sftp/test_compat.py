"""Compatibility switches against a limited server: the stack's asyncssh SFTP server, which offers
neither posix-rename@openssh.com nor exec (so no sha1sum) nor check-file."""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.sftpserver import AsyncSshServer
from shared.config import SftpPartner
from shared.destinations.sftp.destination import SftpDestination
from shared.errors import PermanentError
from shared.secrets import Secret
from tests.sftp.paramiko_server import ParamikoSftpServer
from tests.sftp.sshd_server import keygen


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AsyncSshServer, Path, Path]]:
    base = tmp_path_factory.mktemp("asyncssh")
    key = keygen(base / "client")
    root = base / "root"
    root.mkdir()
    with AsyncSshServer(root, 0, authorized_key=key.with_suffix(".pub"), posix_rename=False) as server:
        yield server, root, key


@pytest.fixture
def config(limited: tuple[AsyncSshServer, Path, Path]):  # type: ignore[no-untyped-def]
    server, root, key = limited
    folder = f"t-{uuid.uuid4().hex[:10]}"
    (root / folder).mkdir()

    def make(**overrides: object) -> SftpPartner:
        fields: dict[str, object] = {
            "host": "127.0.0.1",
            "port": server.port,
            "username": "partner",
            "private_key": Secret(f"file:{key}"),
            "known_hosts": Secret(server.known_hosts_line()),
            "directory": f"/{folder}",
        }
        fields.update(overrides)
        return SftpPartner(**fields)  # type: ignore[arg-type]

    make.local = root / folder  # type: ignore[attr-defined]
    return make


def put(dest: SftpDestination, path: str, data: bytes):  # type: ignore[no-untyped-def]
    return dest.put(path, io.BytesIO(data), len(data))


def test_without_posix_rename_the_default_says_which_switch_to_change(config) -> None:  # type: ignore[no-untyped-def]
    with (
        SftpDestination("limited", config()) as dest,
        pytest.raises(
            PermanentError, match=r"posix-rename@openssh.com; set destinations.sftp.limited.posix_rename: false"
        ),
    ):
        put(dest, "a/file.bin", b"data")
    assert sorted(p.name for p in (config.local / "a").iterdir()) == []  # the partial was removed


def test_posix_rename_false_uploads_and_replaces(config) -> None:  # type: ignore[no-untyped-def]
    first, second = os.urandom(300_000), os.urandom(300_000)
    with SftpDestination("limited", config(posix_rename=False)) as dest:
        assert put(dest, "a/file.bin", first).status == "uploaded"
        assert put(dest, "a/file.bin", second).status == "new_version"
        assert put(dest, "a/file.bin", second).status == "unchanged"
    assert (config.local / "a/file.bin").read_bytes() == second
    assert sorted(p.name for p in (config.local / "a").iterdir()) == ["file.bin"]
    before = os.stat(config.local / "a/file.bin")
    with SftpDestination("limited", config(posix_rename=False)) as fresh:  # no ledger: proves by download
        assert put(fresh, "a/file.bin", second).status == "unchanged"
    assert os.stat(config.local / "a/file.bin").st_mtime_ns == before.st_mtime_ns


@pytest.mark.parametrize("client", ["openssh", "paramiko"])
def test_no_exec_means_no_sha1sum(config, client: str) -> None:  # type: ignore[no-untyped-def]
    dest = SftpDestination("limited", config(posix_rename=False, hashing="sha1sum", ssh_client=client))
    with dest, pytest.raises(PermanentError, match="hashing to 'check-file' or 'none'"):
        put(dest, "h.bin", b"data")


def test_no_check_file_extension(config) -> None:  # type: ignore[no-untyped-def]
    dest = SftpDestination("limited", config(posix_rename=False, hashing="check-file"))
    with dest, pytest.raises(PermanentError, match="does not support the check-file extension"):
        put(dest, "h.bin", b"data")


def check_file_server(tmp_path: Path) -> tuple[ParamikoSftpServer, Path, SftpPartner]:
    """paramiko's SFTP server (it answers check-file), its root, and a partner hashing by it."""
    key = keygen(tmp_path / "client")
    server = ParamikoSftpServer(key.with_suffix(".pub"))
    root = tmp_path / "root"
    root.mkdir()
    partner = SftpPartner(
        host="127.0.0.1",
        port=server.port,
        username="partner",
        private_key=Secret(f"file:{key}"),
        known_hosts=Secret(server.known_hosts),
        directory=str(root),
        hashing="check-file",
    )
    return server, root, partner


def test_check_file_hashing_on_a_server_that_offers_it(tmp_path: Path) -> None:
    server, root, partner = check_file_server(tmp_path)
    data = os.urandom(40_000)  # paramiko's check-file handler is right for 256 B .. 64 KiB
    digest = hashlib.sha1(data).hexdigest()
    try:
        with SftpDestination("checkfile", partner) as dest:
            assert dest.abilities.hashes == frozenset({"sha1"})
            assert put(dest, "c/file.bin", data).status == "uploaded"
            assert dest.stat("c/file.bin").sha1 == digest  # type: ignore[union-attr]
            assert [f.sha1 for f in dest.list("c")] == [digest]
            before = os.stat(root / "c/file.bin").st_mtime_ns
        with SftpDestination("checkfile", partner) as fresh:  # no ledger: the server's hash decides
            assert fresh.put("c/file.bin", io.BytesIO(data), len(data), sha1=digest).status == "unchanged"
            assert put(fresh, "c/file.bin", os.urandom(40_000)).status == "new_version"
        assert os.stat(root / "c/file.bin").st_mtime_ns != before
    finally:
        server.close()


def test_a_file_picked_up_between_listing_and_hashing_is_left_out(tmp_path: Path) -> None:
    """The partner's job removes b.csv right after our listing: hashing it finds nothing. The
    listing is then what it would be a moment later (without b.csv), not a permanent failure."""
    server, root, partner = check_file_server(tmp_path)
    data = os.urandom(40_000)  # paramiko's check-file handler is right for 256 B .. 64 KiB
    try:
        with SftpDestination("checkfile", partner) as dest:
            put(dest, "in/a.csv", data)
            put(dest, "in/b.csv", os.urandom(40_000))
            server.picked_up_after_listing.append(root / "in/b.csv")
            listed = [(f.path, f.size, f.sha1) for f in dest.list("in")]
        assert listed == [("in/a.csv", len(data), hashlib.sha1(data).hexdigest())]
    finally:
        server.close()
