"""fan_out on the local stack: which table exports a request becomes, and run ids on redelivery."""

from __future__ import annotations

import datetime as dt
import uuid

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


def test_a_dashed_table_is_exported_and_routed_back_to_its_run(exports_env: ExportsKit) -> None:
    """BigQuery allows 'orders-eu' as a table name: it is exported like any other table, and its
    files route back to their run (before: the table was left out, reported as unsupported)."""
    import uuid

    from google.cloud import bigquery

    from shared.layout import parse_object_name
    from tests.exports.conftest import manifest_of

    kit = exports_env
    tag = uuid.uuid4().hex[:6]
    dashed = f"orders-eu_{tag}"
    table = f"{kit.stack.project}.sales.{dashed}"
    client = kit.bigquery()
    client.create_table(bigquery.Table(table, schema=[bigquery.SchemaField("id", "INT64")]))
    assert client.insert_rows_json(table, [{"id": 1}, {"id": 2}]) == []
    out = kit.subscribe(TABLE_EXPORTS)
    try:
        kit.main.fan_out(kit.request_event({"dataset": "sales", "run_id": f"dash-{tag}"}))
        exports = _exports_of(kit, out, f"dash-{tag}", 4)
        assert sorted(e.source.table or "" for e in exports) == sorted(["customers", dashed, "orders", "products"])
        (task,) = [e for e in exports if e.source.table == dashed]
        kit.main.export_table(kit.table_export_event(task))
    finally:
        client.delete_table(table, not_found_ok=True)
    manifest = manifest_of(kit, task)
    assert manifest is not None and manifest.row_count == 2
    (file,) = manifest.files
    routed = parse_object_name(file.object, "exports", kit.stack.project)  # how its finalize event finds its run
    assert routed is not None and routed[0].source.table == dashed


def test_a_table_name_offsite_cannot_carry_is_reported_and_the_rest_exported(exports_env: ExportsKit) -> None:
    """BigQuery also allows spaces and Unicode letters in table names, which offsite's folders,
    file names and remote commands do not carry: that one table is left out with a `rejected`
    result naming it, and the dataset's other tables are chosen (before: a ValidationError failed
    the whole request, retried until dead-lettered, no table exported). bqemulator refuses such
    names, so the real dataset's listing gets one added."""
    from shared import runtime
    from shared.gcp.bigquery import BigQueryWarehouse, TableInfo
    from shared.messages import ExportRequest
    from shared.stages.fan_out import select_tables
    from shared.topology import VERIFY_RESULTS

    class WithSpacedTable(BigQueryWarehouse):
        def list_tables(self, dataset: str) -> list[TableInfo]:
            return [*super().list_tables(dataset), TableInfo("orders eu", "TABLE")]

    kit = exports_env
    results = kit.subscribe(VERIFY_RESULTS)
    chosen = select_tables(ExportRequest(dataset="sales"), runtime.config(), WithSpacedTable(kit.bigquery()))
    assert sorted(chosen) == ["customers", "orders", "products"]
    (rejected,) = results.pull(lambda m: "orders eu" in (m.get("reason") or ""), count=1)
    assert rejected["status"] == "rejected" and rejected["stage"] == "fan_out"
    assert "sales.orders eu: not exported" in rejected["reason"]


def test_each_request_is_recorded_by_run_id_and_lookups_list_only_its_folders(exports_env: ExportsKit) -> None:
    """GCS has no listing by run id: the fan-out records each request's exports (once, also when
    redelivered), and a lookup by run id lists only those folders, not the whole bucket."""
    from shared import run_index
    from shared.gcp import gcs
    from shared.verify.runs import find_runs

    kit = exports_env
    out = kit.subscribe(TABLE_EXPORTS)
    run_id = f"indexed-{uuid.uuid4().hex[:8]}"
    tables = kit.request_event({"dataset": "sales", "tables": ["products", "customers"], "run_id": run_id})
    kit.main.fan_out(tables)
    kit.main.fan_out(tables)  # redelivered: nothing new is recorded
    kit.main.fan_out(kit.request_event({"export": "orders_daily", "date": "2025-01-08", "run_id": run_id}))
    published = {e.prefix: e for e in _exports_of(kit, out, run_id, 5)}
    state = kit.config.state_bucket_name

    records = gcs.list_prefix(state, run_index.run_prefix(run_id))
    assert len(records) == 2  # one per request of the run
    assert run_index.exports_of(state, run_id) == [published[p] for p in sorted(published)]
    assert run_index.exports_of(state, "never-fanned-out") is None

    # Each recorded folder gets its _run.json; a folder of the same id the fan-out never recorded
    # is not looked at when the record exists (the whole listing is only for unrecorded runs).
    for export in published.values():
        gcs.write(kit.bucket, export.prefix + "_run.json", export.to_json(), "application/json")
    stray = f"exports/sales/orders/20250108/{run_id}/_run.json"
    gcs.write(kit.bucket, stray, b"{}", "application/json")
    config = kit.config
    indexed = find_runs(config.bucket, config.export_prefix, config.project, run_id=run_id, state_bucket=state)
    assert sorted(r.folder.prefix for r in indexed) == sorted(published)
    assert all(r.has_run and not r.has_manifest for r in indexed)
    listed = find_runs(config.bucket, config.export_prefix, config.project, run_id=run_id)
    assert sorted(r.folder.prefix for r in listed) == sorted([*published, stray.rsplit("/", 1)[0] + "/"])

    # GET /runs/<id>'s tables: as recorded, exports not started yet included, the stray left out
    from shared.http_trigger.progress import expected_from_bucket

    assert expected_from_bucket(config, run_id) == {
        e.source.label: (e.source.table, e.date.isoformat(), tuple(str(d) for d in e.destinations))
        for e in published.values()
    }
