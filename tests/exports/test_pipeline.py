"""Through the running functions: publish on export-requests, files and manifest appear in GCS.

Pub/Sub push subscriptions deliver to fan_out and export_table in their own
functions-framework processes, as in the cloud.
"""

from __future__ import annotations

import json
import time
import uuid

from devstack.state import StackInfo
from shared.gcp import gcs, pubsub
from shared.manifest import Manifest
from shared.topology import EXPORT_REQUESTS, VERIFY_RESULTS
from tests.exports.conftest import Puller


def _wait_manifest(bucket: str, name: str, timeout_s: float = 120.0) -> Manifest:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        data = gcs.read_bytes(bucket, name)
        if data is not None:
            return Manifest.from_json(data)
        time.sleep(0.5)
    raise AssertionError(f"no {name} after {timeout_s:.0f}s")


def _seed(stack: StackInfo) -> None:
    from devstack.sample_data import seed
    from shared.gcp import clients

    seed(clients.bigquery_client(), stack.project)


def test_published_requests_become_files_and_manifests(stack_env: StackInfo) -> None:
    stack = stack_env
    _seed(stack)
    dataset_run, query_run = "p" + uuid.uuid4().hex[:12], "p" + uuid.uuid4().hex[:12]
    pubsub.publish(
        EXPORT_REQUESTS,
        json.dumps(
            {"dataset": "sales", "tables": "products,orders", "date": "2025-01-08", "run_id": dataset_run}
        ).encode(),
    )
    pubsub.publish(
        EXPORT_REQUESTS, json.dumps({"export": "orders_daily", "date": "2025-01-08", "run_id": query_run}).encode()
    )

    products = _wait_manifest(stack.bucket, f"exports/sales/products/20250108/{dataset_run}/_manifest.json")
    orders = _wait_manifest(stack.bucket, f"exports/sales/orders/20250108/{dataset_run}/_manifest.json")
    daily = _wait_manifest(stack.bucket, f"exports/_queries/orders_daily/20250108/{query_run}/_manifest.json")

    assert products.row_count == 200 and [f.name for f in products.files] == ["products_20250108-000000000000.parquet"]
    assert orders.row_count == 200_000 and len(orders.files) >= 3
    assert daily.format == "CSV" and daily.destinations == ("sftp:local",)
    assert [f.name for f in daily.files] == ["Orders_20250108-000000000000.csv.gz"]
    for manifest in (products, orders, daily):
        listed = {o.name: o for o in gcs.list_prefix(stack.bucket, manifest.prefix)}
        for f in manifest.files:
            assert listed[f.object].size == f.size and listed[f.object].md5 == f.md5
    assert (stack.root / "bigquery" / "spool").is_dir()  # the front spools in the stack, not in /tmp


def test_rejected_request_through_the_functions_is_reported(stack_env: StackInfo) -> None:
    from shared.gcp import clients

    stack = stack_env
    name = f"projects/{stack.project}/subscriptions/test-results-{uuid.uuid4().hex[:12]}"
    clients.subscriber_client().create_subscription(
        name=name, topic=f"projects/{stack.project}/topics/{VERIFY_RESULTS}"
    )
    message_id = pubsub.publish(EXPORT_REQUESTS, b'{"dataset": "sales", "tables": "orders; DROP TABLE x"}')
    (result,) = Puller(name).pull(lambda m: m.get("message_id") == message_id, count=1, timeout_s=60)
    assert result["status"] == "rejected" and result["stage"] == "fan_out"
    assert "'orders; DROP TABLE x' is not a valid name" in result["reason"]
