"""The Box backend of the conformance suite: BoxDestination on the local Box API server.

One server per xdist worker (tests/destinations/servers.py); every test gets a fresh, uniquely
named root folder that is deleted recursively afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from devstack.boxapi import BoxApiServer
from shared.destinations.box.destination import BoxDestination
from shared.destinations.box.folders import clear_cache
from tests.box.support import box_settings
from tests.destinations.servers import shared_server


def destination(request: pytest.FixtureRequest) -> Iterator[BoxDestination]:
    server = shared_server(request, "box", lambda data: BoxApiServer(data).start())
    clear_cache()
    admin = BoxDestination(box_settings(server, "0"))
    name = f"conformance-{uuid.uuid4().hex[:12]}"
    root_id = admin.folders.create("0", name, name)
    dest = BoxDestination(box_settings(server, root_id))
    try:
        yield dest
    finally:
        dest.http.close()
        admin.http.call(
            "DELETE", f"{admin.http.api}/folders/{root_id}", what="cleanup", params={"recursive": "true"}
        ).close()
        admin.http.close()
