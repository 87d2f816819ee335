"""The Drive backend of the conformance suite: DriveDestination on the local Drive v3 server
(devstack/driveapi), as an OAuth user with a refresh token, with 256 KiB chunks so resumable
uploads take several requests.

One server per xdist worker (started on first use, stopped at the end of the session); every
test gets a fresh folder in the user's My Drive.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.driveapi import DriveApiServer
from shared.destinations.drive.destination import DriveDestination
from tests.drive.support import new_folder, oauth_settings

_server: DriveApiServer | None = None


def _shared_server(request: pytest.FixtureRequest) -> DriveApiServer:
    global _server
    if _server is None:
        base = Path(tempfile.mkdtemp(prefix="offsite-drive-conformance-"))
        _server = DriveApiServer(base / "data").start()
        request.config.add_cleanup(lambda: _stop_server(base))
    return _server


def _stop_server(base: Path) -> None:
    global _server
    if _server is not None:
        _server.stop()
        _server = None
    shutil.rmtree(base, ignore_errors=True)


def destination(request: pytest.FixtureRequest) -> Iterator[DriveDestination]:
    server = _shared_server(request)
    dest = DriveDestination("conformance", oauth_settings(server, new_folder(server), chunk_size_bytes=8 * 1024 * 1024))
    try:
        yield dest
    finally:
        dest.http.close()
