"""End to end on the full local stack: an export request becomes files in Box, byte for byte.

export-requests → fan_out → export_table → GCS finalize → relay → the upload_box function
(functions-framework process) → local Box API; receipts on ``deliveries``, ``sha1`` on the
GCS objects. Waiting is by polling what the pipeline produced, never by elapsed time.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid

import pytest

from devstack.state import StackInfo
from shared.config_load import load_config
from shared.destinations.box.destination import BoxDestination
from shared.gcp import clients, gcs, reader
from shared.layout import DELIVERED_MANIFEST_NAME
from shared.manifest import Manifest, ManifestFile
from shared.messages import DeliveryReceipt
from shared.topology import DELIVERIES, EXPORT_REQUESTS

pytestmark = pytest.mark.stack
WAIT_S = 240.0


def gcs_sha1(bucket: str, name: str) -> str:
    """SHA-1 of the live object's bytes. fake-gcs-server gives a metadata patch (the SFTP
    function recording its sha1, maybe right now) a new generation: read again then."""
    for _ in range(5):
        digest = hashlib.sha1()
        try:
            with reader.open_object(bucket, name) as stream:
                while block := stream.read(1024 * 1024):
                    digest.update(block)
        except gcs.ObjectMissing:
            continue
        return digest.hexdigest()
    raise AssertionError(f"gs://{bucket}/{name} kept changing generation while read")


def wait_for_manifest(bucket: str, table: str, run_id: str) -> Manifest:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = [o for o in gcs.list_prefix(bucket, f"exports/sales/{table}/") if f"/{run_id}/_manifest.json" in o.name]
        if found:
            data = gcs.read_bytes(bucket, found[0].name)
            assert data is not None
            return Manifest.from_json(data)
        time.sleep(0.5)
    raise AssertionError(f"no manifest for run {run_id} of sales.{table} after {WAIT_S:.0f} s")


def test_an_export_lands_in_box_byte_for_byte(stack_env: StackInfo) -> None:
    from devstack.sample_data import seed

    seed(clients.bigquery_client(), clients.project(), tables=("orders", "customers"))
    admin = stack_env.pubsub_admin()
    watch = f"box-e2e-{uuid.uuid4().hex[:8]}"
    admin.create_subscription(watch, DELIVERIES)
    run_id = "r" + uuid.uuid4().hex[:12]
    admin.publish(
        EXPORT_REQUESTS, json.dumps({"dataset": "sales", "tables": ["orders", "customers"], "run_id": run_id}).encode()
    )

    manifests = {table: wait_for_manifest(stack_env.bucket, table, run_id) for table in ("orders", "customers")}
    assert len(manifests["orders"].files) > 1  # the sample table shards at the local shard size
    settings = load_config(stack_env.config_path, environ={}).destinations.box
    assert settings is not None
    box = BoxDestination(settings)
    expected = {
        f"GCP/bigquery/sales/{table}/{m.date.replace('-', '')}/{run_id}/{f.name}": f
        for table, m in manifests.items()
        for f in (*m.files, ManifestFile("_manifest.json", m.prefix + DELIVERED_MANIFEST_NAME, 0))
    }  # + each run's manifest copy (with every file's SHA-1), delivered after its data files

    receipts: dict[str, DeliveryReceipt] = {}
    deadline = time.monotonic() + WAIT_S
    while len([r for r in receipts.values() if r.destination == "box"]) < len(expected):
        assert time.monotonic() < deadline, f"{len(receipts)} of {len(expected)} Box receipts after {WAIT_S:.0f} s"
        for message in admin.pull(watch, 100):
            receipt = DeliveryReceipt.from_json(message["data_bytes"])
            if receipt.run_id == run_id and receipt.destination == "box":
                receipts[receipt.remote_path] = receipt
        time.sleep(0.3)
    assert set(receipts) == set(expected)

    listed = {f.path: f for table in manifests for f in box.list(f"GCP/bigquery/sales/{table}")}
    for path, entry in expected.items():
        remote = listed[path]
        truth = gcs_sha1(stack_env.bucket, entry.object)
        size = entry.size or gcs.stat(stack_env.bucket, entry.object).size
        assert remote.sha1 == truth and remote.size == size, path  # Box's SHA-1 == the GCS bytes' SHA-1
        assert receipts[path].sha1 == truth and receipts[path].remote_id == remote.remote_id
        assert gcs.stat(stack_env.bucket, entry.object).metadata["sha1"] == truth
