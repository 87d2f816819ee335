"""A local Drive v3 server per test session (faults and request counts are cleared per test)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.driveapi import DriveApiServer


@pytest.fixture(scope="session")
def drive_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DriveApiServer]:
    server = DriveApiServer(tmp_path_factory.mktemp("driveapi") / "data").start()
    yield server
    server.stop()


@pytest.fixture
def drive(drive_server: DriveApiServer) -> DriveApiServer:
    drive_server.clear_faults()
    drive_server.clear_requests()
    drive_server.configure(token_ttl_s=3600)
    return drive_server
