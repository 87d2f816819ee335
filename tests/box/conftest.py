"""Fixtures of the Box tests: a Box API server of their own (faults and request counts stay
per test), GCS and Pub/Sub from the shared bare stack, a fresh Box root folder per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.boxapi import BoxApiServer
from devstack.state import StackInfo
from shared.config import BoxDestination, Config, Destinations
from shared.destinations.box import destination as box_module
from shared.destinations.box.folders import clear_cache
from tests.box.pipeline import Pipeline
from tests.box.support import box_settings


@pytest.fixture(scope="session")
def box_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BoxApiServer]:
    base = tmp_path_factory.mktemp("boxapi")
    server = BoxApiServer(base / "data").start()
    yield server
    server.stop()


@pytest.fixture
def box_root(box_server: BoxApiServer) -> Iterator[str]:
    """A fresh, uniquely named folder under the Box root; deleted (recursively) afterwards."""
    from shared.destinations.box.destination import BoxDestination as Box

    clear_cache()
    box_server.clear_faults()
    box_server.clear_requests()  # request counts below are this test's alone
    server_settings = box_server.configure()
    admin = Box(box_settings(box_server, "0"))
    name = f"t-{uuid.uuid4().hex[:12]}"
    folder_id = admin.folders.create("0", name, name)
    yield folder_id
    box_server.clear_faults()
    box_server.configure(**server_settings)
    admin.http.call(
        "DELETE", f"{admin.http.api}/folders/{folder_id}", what="cleanup", params={"recursive": "true"}
    ).close()
    admin.http.close()


@pytest.fixture
def settings(box_server: BoxApiServer, box_root: str) -> BoxDestination:
    return box_settings(box_server, box_root)


@pytest.fixture
def pipeline(bare_stack_env: StackInfo, settings: BoxDestination, box_server: BoxApiServer) -> Iterator[Pipeline]:
    """GCS and Pub/Sub of the shared bare stack, a fresh bucket, a pull subscription on
    deliveries, and a config whose Box destination is this test's root folder."""
    bucket = f"exports-{uuid.uuid4().hex[:10]}"
    config = Config(project=bare_stack_env.project, bucket=bucket, destinations=Destinations(box=settings))
    box_module.for_settings.cache_clear()
    with Pipeline(config, box_server) as pipe:
        yield pipe
    box_module.for_settings.cache_clear()


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    return tmp_path
