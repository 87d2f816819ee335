"""Fixtures of the Box tests: a real Box API server, GCS and Pub/Sub emulators (one set per
xdist worker), a fresh Box root folder and a fresh run folder per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.box_folders import clear_cache
from shared.config import BoxDestination, Config, Destinations
from shared.destinations import box as box_module
from shared.gcp import clients
from tests.box.pipeline import Pipeline
from tests.box.servers import LocalBox, LocalGcs, LocalPubSub, box_settings

PROJECT = "offsite-box-tests"


@pytest.fixture(scope="session")
def box_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBox]:
    base = tmp_path_factory.mktemp("boxapi")
    server = LocalBox(data_dir=base / "data").start()
    yield server
    server.stop()


@pytest.fixture
def box_root(box_server: LocalBox) -> Iterator[str]:
    """A fresh, uniquely named folder under the Box root; deleted (recursively) afterwards."""
    from shared.destinations.box import BoxDestination as Box

    clear_cache()
    box_server.clear_faults()
    admin = Box(box_settings(box_server, "0"))
    name = f"t-{uuid.uuid4().hex[:12]}"
    folder_id = admin.folders.create("0", name, name)
    yield folder_id
    box_server.clear_faults()
    admin.http.call(
        "DELETE", f"{admin.http.api}/folders/{folder_id}", what="cleanup", params={"recursive": "true"}
    ).close()
    admin.http.close()


@pytest.fixture
def settings(box_server: LocalBox, box_root: str) -> BoxDestination:
    return box_settings(box_server, box_root)


@pytest.fixture(scope="session")
def emulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalGcs, LocalPubSub]]:
    base = tmp_path_factory.mktemp("emulators")
    pubsub = LocalPubSub().start(base)
    gcs = LocalGcs(root=base / "gcs").start(pubsub.host)
    patch = pytest.MonkeyPatch()
    patch.setenv("STORAGE_EMULATOR_HOST", gcs.url)
    patch.setenv("PUBSUB_EMULATOR_HOST", pubsub.host)
    patch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
    clients.reset()
    yield gcs, pubsub
    patch.undo()
    clients.reset()
    gcs.stop()
    pubsub.stop()


@pytest.fixture
def pipeline(
    emulators: tuple[LocalGcs, LocalPubSub], settings: BoxDestination, box_server: LocalBox
) -> Iterator[Pipeline]:
    """A bucket, a deliveries topic with a pull subscription, and a config routing 'sales' to Box."""
    config = Config(project=PROJECT, bucket=f"exports-{uuid.uuid4().hex[:10]}", destinations=Destinations(box=settings))
    box_module.for_settings.cache_clear()
    with Pipeline(config, box_server) as pipe:
        yield pipe
    box_module.for_settings.cache_clear()


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    return tmp_path
