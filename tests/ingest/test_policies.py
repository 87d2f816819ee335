"""Per-table policies: deletes (tombstone, reconcile), lag hold-back, JSON columns."""

from __future__ import annotations

import json
import sqlite3

from tests.ingest.conftest import IngestKit

ORDERS = """
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    doc TEXT,
    deleted_at TEXT,
    updated_at TEXT NOT NULL
);
"""


def with_orders(kit: IngestKit) -> sqlite3.Connection:
    conn = kit.sqlite()
    conn.executescript(ORDERS)
    return conn


def test_reconcile_marks_rows_missing_from_sqlite_on_a_full_sync(ingest: IngestKit) -> None:
    conn = with_orders(ingest)
    conn.executemany(
        "INSERT INTO orders (id, doc, updated_at) VALUES (?, '{}', '2025-01-01 00:00:00')", [(1,), (2,), (3,)]
    )
    settings = ingest.settings(tables={"orders": {"deletes": "reconcile"}})
    ingest.run(settings, tables=["orders"])
    conn.execute("DELETE FROM orders WHERE id = 2")
    ingest.run(settings, tables=["orders"])
    assert all(r["_offsite_deleted_at"] is None for r in ingest.rows("orders"))  # incremental runs cannot see deletes

    ingest.run(settings, tables=["orders"], full=True)
    marked = {r["id"]: r["_offsite_deleted_at"] is not None for r in ingest.rows("orders")}
    assert marked == {1: False, 2: True, 3: False}

    conn.execute("INSERT INTO orders (id, doc, updated_at) VALUES (2, '{}', '2025-01-02 00:00:00')")
    ingest.run(settings, tables=["orders"])
    assert all(r["_offsite_deleted_at"] is None for r in ingest.rows("orders"))  # it came back


def test_a_tombstone_column_syncs_soft_deletes(ingest: IngestKit) -> None:
    conn = with_orders(ingest)
    conn.execute("INSERT INTO orders (id, updated_at) VALUES (1, '2025-01-01 00:00:00')")
    settings = ingest.settings(tables={"orders": {"deletes": "tombstone", "tombstone_column": "deleted_at"}})
    ingest.run(settings, tables=["orders"])
    conn.execute("UPDATE orders SET deleted_at = '2025-01-05 00:00:00', updated_at = '2025-01-05 00:00:00'")
    ingest.run(settings, tables=["orders"])
    (row,) = ingest.rows("orders")
    assert row["deleted_at"].isoformat() == "2025-01-05T00:00:00+00:00"


def test_lag_holds_back_rows_newer_than_the_window(ingest: IngestKit) -> None:
    conn = with_orders(ingest)
    conn.execute("INSERT INTO orders (id, updated_at) VALUES (1, datetime('now', '-2 hours'))")
    conn.execute("INSERT INTO orders (id, updated_at) VALUES (2, datetime('now'))")  # may still be committing
    settings = ingest.settings(tables={"orders": {"lag_s": 3600}})
    outcome = ingest.run(settings, tables=["orders"])["orders"]
    assert outcome.rows_read == 1
    assert [r["id"] for r in ingest.rows("orders")] == [1]
    conn.execute("UPDATE orders SET updated_at = datetime('now', '-90 minutes') WHERE id = 2")
    ingest.run(settings, tables=["orders"])
    assert [r["id"] for r in ingest.rows("orders")] == [1, 2]


def test_json_columns_land_as_json(ingest: IngestKit) -> None:
    conn = with_orders(ingest)
    conn.execute("""INSERT INTO orders (id, doc, updated_at) VALUES (1, '{"items": [1, 2]}', '2025-01-01')""")
    settings = ingest.settings(tables={"orders": {"json_columns": ["doc"]}})
    assert ingest.run(settings, tables=["orders"])["orders"].status == "synced"
    sql = f"SELECT TO_JSON_STRING(doc) AS doc, JSON_VALUE(doc, '$.items[1]') AS second FROM `{ingest.stack.project}.{ingest.dataset}.orders`"
    (row,) = [dict(r) for r in ingest.client.query(sql).result()]
    assert json.loads(row["doc"]) == {"items": [1, 2]}
    assert row["second"] == "2"
