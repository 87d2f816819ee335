"""The Drive backend of the conformance suite: DriveDestination on the local Drive v3 server
(devstack/driveapi), as an OAuth user with a refresh token.

One server per xdist worker (tests/destinations/servers.py); every test gets a fresh folder in
the user's My Drive.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.driveapi import DriveApiServer
from shared.destinations.drive.destination import DriveDestination
from tests.destinations.servers import shared_server
from tests.drive.support import new_folder, oauth_settings


def destination(request: pytest.FixtureRequest) -> Iterator[DriveDestination]:
    server = shared_server(request, "drive", lambda data: DriveApiServer(data).start())
    dest = DriveDestination("conformance", oauth_settings(server, new_folder(server)))
    try:
        yield dest
    finally:
        dest.http.close()
