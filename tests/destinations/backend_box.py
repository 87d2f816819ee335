"""The Box backend of the conformance suite: BoxDestination on the local Box API server.

One server per xdist worker (started on first use, stopped at the end of the session); every
test gets a fresh, uniquely named root folder that is deleted recursively afterwards.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.boxapi import BoxApiServer
from shared.destinations.box.destination import BoxDestination
from shared.destinations.box.folders import clear_cache
from tests.box.support import box_settings

_server: BoxApiServer | None = None


def _shared_server(request: pytest.FixtureRequest) -> BoxApiServer:
    global _server
    if _server is None:
        base = Path(tempfile.mkdtemp(prefix="offsite-box-conformance-"))
        _server = BoxApiServer(base / "data").start()
        request.config.add_cleanup(lambda: _stop_server(base))
    return _server


def _stop_server(base: Path) -> None:
    global _server
    if _server is not None:
        _server.stop()
        _server = None
    shutil.rmtree(base, ignore_errors=True)


def destination(request: pytest.FixtureRequest) -> Iterator[BoxDestination]:
    server = _shared_server(request)
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
