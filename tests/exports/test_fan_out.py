"""fan_out on the local stack: which table exports a request becomes, and run ids on redelivery."""

from __future__ import annotations

import datetime as dt

from shared.events import FIRST_PUBLISHED_ATTR
from shared.messages import TableExport
from shared.stages.fan_out import derive_run_id
from shared.topology import TABLE_EXPORTS
from tests.exports.conftest import ExportsKit


def _exports_of(kit: ExportsKit, puller, run_id: str, count: int) -> list[TableExport]:
    bodies = puller.pull(lambda m: m.get("run_id") == run_id, count=count)
    return [TableExport.from_json(_json({k: v for k, v in b.items() if k != "_attributes"})) for b in bodies]


def _json(obj) -> bytes:
    import json

    return json.dumps(obj).encode()


def test_dataset_mode_default_tables_skip_views_and_use_config_defaults(exports_env: ExportsKit) -> None:
    kit = exports_env
    out = kit.subscribe(TABLE_EXPORTS)
    event = kit.request_event({"dataset": "sales"}, message_id="4242", publish_time="2025-01-08T23:30:00.5Z")
    kit.main.fan_out(event)
    run_id = derive_run_id("4242", "2025-01-08T23:30:00.5Z")
    exports = _exports_of(kit, out, run_id, 3)
    tables = sorted(e.source.table or "" for e in exports)
    assert tables == ["customers", "orders", "products"]  # the view orders_by_day is skipped
    for e in exports:
        assert e.format == "PARQUET"
        assert e.destinations == ("box", "sftp:local")
        assert e.date == dt.date(2025, 1, 8)
        assert e.prefix == f"exports/sales/{e.source.table}/20250108/{run_id}/"
        assert e.file_name == f"{e.source.table}_{{YYYYMMDD}}-*.parquet"
        assert e.source.project == kit.stack.project


def test_explicit_tables_string_format_destinations_and_run_id(exports_env: ExportsKit) -> None:
    kit = exports_env
    out = kit.subscribe(TABLE_EXPORTS)
    body = {
        "dataset": "sales",
        "tables": "products,customers",
        "format": "avro",
        "destinations": ["box"],
        "run_id": "manual-1",
    }
    kit.main.fan_out(kit.request_event(body))
    exports = _exports_of(kit, out, "manual-1", 2)
    assert sorted(e.source.table or "" for e in exports) == ["customers", "products"]
    assert {e.format for e in exports} == {"AVRO"}
    assert {e.destinations for e in exports} == {("box",)}
    assert {e.file_name for e in exports} == {"products_{YYYYMMDD}-*.avro", "customers_{YYYYMMDD}-*.avro"}


def test_query_mode_with_date_and_default_date(exports_env: ExportsKit) -> None:
    kit = exports_env
    out = kit.subscribe(TABLE_EXPORTS)
    kit.main.fan_out(kit.request_event({"export": "orders_daily", "date": "2025-01-08", "run_id": "q-dated"}))
    (dated,) = _exports_of(kit, out, "q-dated", 1)
    assert dated.source.mode == "query" and dated.source.export == "orders_daily"
    assert dated.date == dt.date(2025, 1, 8)
    assert dated.prefix == "exports/_queries/orders_daily/20250108/q-dated/"
    assert dated.file_name == "Orders_{YYYYMMDD}-*.csv.gz"
    assert dated.destinations == ("sftp:local",) and dated.format == "CSV"

    # No date: the scheduled day is the publish time's date (UTC for this export).
    kit.main.fan_out(
        kit.request_event({"export": "orders_daily", "run_id": "q-default"}, publish_time="2025-03-01T00:00:01Z")
    )
    (default,) = _exports_of(kit, out, "q-default", 1)
    assert default.date == dt.date(2025, 3, 1)

    # Replayed from the dead-letter queue days later: dated by when it was first published.
    replay = kit.request_event({"export": "orders_daily", "run_id": "q-replay"}, publish_time="2025-03-04T09:00:00Z")
    replay.data["message"]["attributes"] = {FIRST_PUBLISHED_ATTR: "2025-03-01T00:00:01Z"}
    kit.main.fan_out(replay)
    (replayed,) = _exports_of(kit, out, "q-replay", 1)
    assert replayed.date == dt.date(2025, 3, 1)


def test_query_mode_format_override_changes_the_extension(exports_env: ExportsKit) -> None:
    kit = exports_env
    out = kit.subscribe(TABLE_EXPORTS)
    kit.main.fan_out(
        kit.request_event({"export": "orders_daily", "date": "2025-01-08", "format": "PARQUET", "run_id": "q-pq"})
    )
    (task,) = _exports_of(kit, out, "q-pq", 1)
    assert task.file_name == "Orders_{YYYYMMDD}-*.parquet"


def test_redelivered_request_repeats_the_same_run(exports_env: ExportsKit) -> None:
    kit = exports_env
    out = kit.subscribe(TABLE_EXPORTS)
    event = kit.request_event(
        {"dataset": "sales", "tables": ["products"]}, message_id="77", publish_time="2025-01-09T02:00:00.000000001Z"
    )
    kit.main.fan_out(event)
    kit.main.fan_out(event)  # Pub/Sub redelivers the same message
    run_id = derive_run_id("77", "2025-01-09T02:00:00.000000001Z")
    exports = _exports_of(kit, out, run_id, 2)
    assert len(exports) == 2 and exports[0] == exports[1]
    # The emulator reuses small message ids after a restart: another publish time is another run.
    kit.main.fan_out(
        kit.request_event(
            {"dataset": "sales", "tables": ["products"]}, message_id="77", publish_time="2025-01-10T02:00:00Z"
        )
    )
    other = derive_run_id("77", "2025-01-10T02:00:00Z")
    assert other != run_id
    assert _exports_of(kit, out, other, 1)


def test_a_table_name_offsite_cannot_carry_is_reported_and_the_rest_exported(exports_env: ExportsKit) -> None:
    """BigQuery allows 'orders-eu' as a table name; run folders and messages take letters, digits
    and '_'. That one table is left out with a `rejected` result naming it, and the dataset's
    other tables go out (before: a ValidationError failed the whole request, retried until
    dead-lettered, no table exported)."""
    import uuid

    from google.cloud import bigquery

    from shared.topology import VERIFY_RESULTS

    kit = exports_env
    name = f"orders-eu_{uuid.uuid4().hex[:6]}"
    table = f"{kit.stack.project}.sales.{name}"
    client = kit.bigquery()
    client.create_table(bigquery.Table(table, schema=[bigquery.SchemaField("id", "INT64")]))
    out, results = kit.subscribe(TABLE_EXPORTS), kit.subscribe(VERIFY_RESULTS)
    try:
        kit.main.fan_out(kit.request_event({"dataset": "sales", "run_id": f"dash-{name[-6:]}"}))
    finally:
        client.delete_table(table, not_found_ok=True)
    exports = _exports_of(kit, out, f"dash-{name[-6:]}", 3)
    assert sorted(e.source.table or "" for e in exports) == ["customers", "orders", "products"]
    (rejected,) = results.pull(lambda m: name in (m.get("reason") or ""), count=1)
    assert rejected["status"] == "rejected" and rejected["stage"] == "fan_out"
    assert f"sales.{name}: not exported" in rejected["reason"]
