"""What the delivery tests share: the stack's config, receipts on ``deliveries``, run folders as
export_table leaves them, and finalize events shaped like the saved one in tests/data."""

from __future__ import annotations

import copy
import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.state import StackInfo
from shared.config import Config
from shared.config_load import load_config
from shared.gcp import clients, gcs
from shared.layout import RunFolder
from shared.messages import DeliveryReceipt, Source
from shared.topology import DELIVERIES
from tests.run_folders import start_run

TEMPLATE = json.loads((Path(__file__).parents[1] / "data" / "storage_finalized.json").read_text())
DAY = dt.date(2025, 1, 8)


@pytest.fixture
def stack(bare_stack_env: StackInfo) -> StackInfo:
    return bare_stack_env


@pytest.fixture
def config(stack: StackInfo) -> Config:
    return load_config(stack.config_path, environ={})


@pytest.fixture
def receipts(stack: StackInfo) -> Iterator[Callable[[], list[DeliveryReceipt]]]:
    """Receipts published on ``deliveries`` since the test started."""
    admin = stack.pubsub_admin()
    name = f"sftp-test-{uuid.uuid4().hex[:10]}"
    admin.create_subscription(name, DELIVERIES)
    seen: list[DeliveryReceipt] = []

    def pull() -> list[DeliveryReceipt]:
        while batch := admin.pull(name, 50):
            seen.extend(DeliveryReceipt.from_json(m["data_bytes"]) for m in batch)
        return list(seen)

    yield pull


def write_run(
    config: Config, destinations: tuple[str, ...], files: dict[str, bytes], *, query: bool = False, file_name: str = ""
) -> tuple[RunFolder, dict[str, Any]]:
    """A run folder as export_table leaves it: ``_run.json`` first, then the data files.
    Returns the folder and, per file, the object's resource (what the finalize event carries)."""
    run_id = f"r{uuid.uuid4().hex[:12]}"
    if query:
        source = Source(mode="query", project=config.project, export="orders_daily")
        template = file_name or "Orders_{YYYYMMDD}-*.csv.gz"
    else:
        source = Source(mode="table", project=config.project, dataset="sales", table="orders")
        template = file_name or "orders_{YYYYMMDD}-*.parquet"
    run = start_run(config.bucket, config.export_prefix, source, DAY, run_id, destinations, template)
    resources = {}
    for name, data in files.items():
        info = gcs.write(config.bucket, run.prefix + name, data)
        blob = clients.storage_client().bucket(config.bucket).get_blob(run.prefix + name)
        resources[name] = dict(blob._properties) | {"generation": str(info.generation)}
    return run, resources


def finalize_event(resource: dict[str, Any]) -> dict[str, Any]:
    """A google.cloud.storage.object.v1.finalized CloudEvent shaped like tests/data/storage_finalized.json."""
    event = copy.deepcopy(TEMPLATE)
    event["id"] = str(uuid.uuid4().int)[:16]
    event["source"] = f"//storage.googleapis.com/projects/_/buckets/{resource['bucket']}"
    event["subject"] = f"objects/{resource['name']}"
    event["data"] = {**TEMPLATE["data"], **resource}
    return event


def shard(prefix: str, n: int = 0, ext: str = "parquet") -> str:
    return f"{prefix}_{DAY:%Y%m%d}-{n:012d}.{ext}"
