"""The SFTP backend of the conformance suite on asyncssh: the stack's limited SFTP server
(devstack.sftpserver: no posix-rename, no exec), so the partner runs with ``posix_rename: false``
and ``hashing: none`` — the compatibility path.

One server per xdist worker, started on first use; every test gets a fresh directory.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.sftpserver import AsyncSshServer
from shared.config import SftpPartner
from shared.destinations.sftp.destination import SftpDestination
from shared.secrets import Secret

_server: tuple[AsyncSshServer, Path, Path] | None = None


def _shared_server(request: pytest.FixtureRequest) -> tuple[AsyncSshServer, Path, Path]:
    global _server
    if _server is None:
        base = request.config._tmp_path_factory.mktemp("asyncssh-conformance")  # type: ignore[attr-defined]
        key = base / "client_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        root = base / "root"
        root.mkdir()
        server = AsyncSshServer(root, 0, authorized_key=key.with_suffix(".pub"), posix_rename=False).start()
        _server = (server, root, key)
        request.config.add_cleanup(_stop_server)
    return _server


def _stop_server() -> None:
    global _server
    if _server is not None:
        _server[0].stop()
        _server = None


def destination(request: pytest.FixtureRequest) -> Iterator[SftpDestination]:
    server, root, key = _shared_server(request)
    folder = f"conformance-{uuid.uuid4().hex[:12]}"
    (root / folder).mkdir()
    partner = SftpPartner(
        host="127.0.0.1",
        port=server.port,
        username="conformance",
        private_key=Secret(f"file:{key}"),
        known_hosts=Secret(server.known_hosts_line()),
        directory=f"/{folder}",
        posix_rename=False,
    )
    dest = SftpDestination("conformance-asyncssh", partner)
    try:
        yield dest
    finally:
        dest.close()
        shutil.rmtree(root / folder, ignore_errors=True)
