"""End to end through the stack's function processes: GCS finalize → relay → transfer_sftp → sshd.

1. A data file written into a run folder reaches the function as a real storage CloudEvent.
2. A query export request (seed 003's flow) runs fan_out → export_table → transfer_sftp, and
   every exported file lands on the partner with the same SHA-1 as in GCS.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import TypeVar

import pytest

from devstack.sample_data import seed
from devstack.state import StackInfo
from shared.config_load import load_config
from shared.gcp import clients, gcs
from shared.layout import RunFolder
from shared.messages import Source
from shared.topology import EXPORT_REQUESTS
from tests.run_folders import eventually, start_run

pytestmark = pytest.mark.stack
T = TypeVar("T")
DEADLINE_S = 240.0


def sha1_of_object(bucket: str, name: str) -> str:
    return hashlib.sha1(clients.storage_client().bucket(bucket).blob(name).download_as_bytes()).hexdigest()


def test_a_finalized_data_file_reaches_the_partner_through_the_function(stack_env: StackInfo) -> None:
    config = load_config(stack_env.config_path, environ={})
    day = dt.date(2025, 1, 9)
    run_id = f"e2e{uuid.uuid4().hex[:10]}"
    source = Source(mode="table", project=config.project, dataset="sales", table="orders")
    run = start_run(
        config.bucket, config.export_prefix, source, day, run_id, ("sftp:local",), "orders_{YYYYMMDD}-*.parquet"
    )
    data = os.urandom(1_500_000)
    name = "orders_20250109-000000000000.parquet"
    gcs.write(config.bucket, run.prefix + name, data)
    landed = stack_env.sftp.directory / "sales/orders/20250109" / run_id / name
    eventually(lambda: landed.exists() and landed.stat().st_size == len(data), f"{landed} written")
    assert hashlib.sha1(landed.read_bytes()).hexdigest() == hashlib.sha1(data).hexdigest()
    assert sorted(p.name for p in landed.parent.iterdir()) == [name]  # no .partial left


def test_query_export_is_delivered_with_equal_sha1(stack_env: StackInfo) -> None:
    config = load_config(stack_env.config_path, environ={})
    seed(clients.bigquery_client(), config.project, tables=("orders",))  # the stack starts empty; repeatable
    run_id = f"e2e{uuid.uuid4().hex[:10]}"
    request = {"export": "orders_daily", "date": "2025-01-10", "run_id": run_id}
    stack_env.pubsub_admin().publish(EXPORT_REQUESTS, json.dumps(request).encode())
    source = Source(mode="query", project=config.project, export="orders_daily")
    run = RunFolder(config.export_prefix, source, dt.date(2025, 1, 10), run_id)
    manifest = eventually(lambda: gcs.read_json(config.bucket, run.manifest_name), f"{run.manifest_name} written")
    files = [f["name"] for f in manifest["files"]]
    assert files, "the export produced no files"
    folder: Path = stack_env.sftp.directory / "orders_daily" / "20250110"

    def all_landed() -> bool:
        return all(
            (folder / n).exists() and (folder / n).stat().st_size == f["size"]
            for n, f in zip(files, manifest["files"], strict=True)
        )

    eventually(all_landed, f"{len(files)} files of run {run_id} in {folder}")
    for entry in manifest["files"]:
        remote = hashlib.sha1((folder / entry["name"]).read_bytes()).hexdigest()
        assert remote == sha1_of_object(config.bucket, entry["object"]), entry["name"]
    # The manifest copy is delivered after the data files (via its own .partial); once it is in
    # place, nothing of this run may be left half-written.
    delivered_manifest = folder / f"_manifest_{run_id}.json"
    eventually(delivered_manifest.exists, f"{delivered_manifest} delivered")
    assert json.loads(delivered_manifest.read_bytes())["run_id"] == run_id
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".partial")]
