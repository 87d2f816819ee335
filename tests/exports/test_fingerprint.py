"""export_table records a per-column fingerprint of what it exported (shared/gcp/fingerprint.py),
on the local BigQuery (bqemulator behind the front), for tables (as of the extract's start) and
for query exports (the query run again, kept when it sees the exported row count)."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from shared.gcp import fingerprint_job
from shared.gcp.bigquery import BigQueryWarehouse
from shared.gcp.fingerprint import METHOD, differences
from shared.stages.export import run_export
from tests.exports.conftest import ExportsKit, manifest_of, query_task, table_task


def test_table_export_fingerprints_every_column_of_the_snapshot(exports_env: ExportsKit) -> None:
    kit = exports_env
    task = table_task(kit, "customers", "PARQUET")
    kit.main.export_table(kit.table_export_event(task))
    manifest = manifest_of(kit, task)
    fp = manifest.fingerprint
    assert fp is not None and fp["method"] == METHOD and fp["as_of"]
    rows = kit.source_rows("customers")
    assert fp["row_count"] == manifest.row_count == len(rows)
    assert sorted(fp["columns"]) == sorted(f["name"] for f in manifest.schema)  # nested ones as a whole
    for name, column in fp["columns"].items():
        assert column["nulls"] == sum(1 for r in rows if r[name] is None), name
    # computed again on the unchanged table, it is equal; a changed value is named by column
    wh = BigQueryWarehouse(kit.bigquery())
    table = f"`{kit.stack.project}.sales.customers`"
    again = fingerprint_job.compute(wh.client, table, [], manifest.schema, None, "customers")
    assert again is not None and differences(fp, {**again, "as_of": fp["as_of"]}) == []
    # one row less (a flat table: bqemulator loses RECORD columns of a subquery's SELECT *)
    orders = f"`{kit.stack.project}.sales.orders`"
    schema = [{"name": "order_id", "type": "INTEGER"}, {"name": "order_date", "type": "DATE"}]
    full = fingerprint_job.compute(wh.client, orders, [], schema, None, "orders")
    one_less = fingerprint_job.compute(
        wh.client, f"(SELECT * FROM {orders} WHERE order_id != 7)", [], schema, None, "orders"
    )
    assert full is not None and one_less is not None
    lines = differences(full, one_less)
    assert lines[0] == f"row count {full['row_count'] - 1}, expected {full['row_count']}"
    assert [line.split(":")[0] for line in lines[1:]] == ["column order_date", "column order_id"]


def test_query_export_has_a_fingerprint_of_its_rows(exports_env: ExportsKit) -> None:
    kit = exports_env
    day = dt.date(2025, 1, 8)
    task = query_task(kit, day, "CSV")
    kit.main.export_table(kit.table_export_event(task))
    manifest = manifest_of(kit, task)
    assert manifest.fingerprint is not None
    assert manifest.fingerprint["row_count"] == manifest.row_count == kit.source_count("orders", where_date=day)
    assert manifest.fingerprint["as_of"] is None  # a query has no snapshot to name


@pytest.mark.parametrize(
    "tail", [";", "\n-- the day's orders", " ;\n\n", "; -- the day's orders", ";\n/* ; */ # done;\n"]
)
def test_a_query_ending_in_a_semicolon_or_a_comment_is_counted_and_fingerprinted(
    exports_env: ExportsKit, tail: str
) -> None:
    """EXPORT DATA takes such a query as written; COUNT(*) and the fingerprint wrap it in a subquery."""
    kit = exports_env
    entry = kit.config.export("orders_daily")
    config = kit.config.model_copy(update={"exports": (entry.model_copy(update={"sql": entry.sql + tail}),)})
    day = dt.date(2025, 1, 8)
    expected = kit.source_count("orders", where_date=day)
    manifest = run_export(query_task(kit, day), config, BigQueryWarehouse(), time.monotonic() + 120)
    assert manifest is not None and manifest.fingerprint is not None
    assert manifest.fingerprint["row_count"] == manifest.row_count == expected


def test_a_snapshot_query_export_exports_every_row_the_query_returns(exports_env: ExportsKit) -> None:
    """``snapshot: true``: a query that reads no date runs as written for any run date, counted and
    fingerprinted like a dated one."""
    kit = exports_env
    entry = kit.config.export("orders_daily")
    snapshot = entry.model_copy(update={"sql": f"SELECT * FROM `{kit.stack.project}.sales.orders`", "snapshot": True})
    config = kit.config.model_copy(update={"exports": (snapshot,)})
    manifest = run_export(query_task(kit, dt.date(2025, 1, 8)), config, BigQueryWarehouse(), time.monotonic() + 120)
    assert manifest is not None and manifest.fingerprint is not None
    assert manifest.fingerprint["row_count"] == manifest.row_count == kit.source_count("orders")
