"""The saved CloudEvents in tests/data drive the real handlers unchanged (as functions-framework delivers them)."""

from __future__ import annotations

import base64
import datetime as dt
import json

from shared.messages import TableExport
from shared.stages.fan_out import derive_run_id
from shared.topology import TABLE_EXPORTS
from tests.exports.conftest import DATA, ExportsKit, manifest_of


def _load(name: str) -> dict:
    return json.loads((DATA / name).read_text())


def test_saved_query_request_fans_out(exports_env: ExportsKit) -> None:
    kit = exports_env
    out = kit.subscribe(TABLE_EXPORTS)
    event = _load("pubsub_export_request_query.json")
    kit.main.fan_out(event)
    run_id = derive_run_id("11234567890124000", "2025-01-08T02:00:00.123Z")
    (body,) = out.pull(lambda m: m.get("run_id") == run_id, count=1)
    task = TableExport.from_json(json.dumps({k: v for k, v in body.items() if k != "_attributes"}))
    assert task.source.export == "orders_daily" and task.date == dt.date(2025, 1, 8)
    assert body["_attributes"] == {"run_id": run_id}


def test_saved_dataset_request_fans_out(exports_env: ExportsKit) -> None:
    kit = exports_env
    out = kit.subscribe(TABLE_EXPORTS)
    kit.main.fan_out(_load("pubsub_export_request.json"))  # {"dataset": "sales", "tables": "orders,customers"}
    run_id = derive_run_id("11234567890123456", "2025-01-08T02:00:00.123Z")
    bodies = out.pull(lambda m: m.get("run_id") == run_id, count=2)
    assert sorted(b["source"]["table"] for b in bodies) == ["customers", "orders"]


def test_saved_table_export_runs(exports_env: ExportsKit) -> None:
    kit = exports_env
    event = _load("pubsub_table_export.json")
    kit.main.export_table(event)
    task = TableExport.from_json(base64.b64decode(event["data"]["message"]["data"]))
    manifest = manifest_of(kit, task)
    assert manifest is not None and manifest.run_id == "r0123456789ab" and manifest.row_count == 200_000
    assert manifest.prefix == "exports/sales/orders/20250108/r0123456789ab/"
