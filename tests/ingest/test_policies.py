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


def test_a_full_sync_with_a_lag_reads_rows_whose_cursor_is_null(ingest: IngestKit) -> None:
    """docs/ingest.md: a full sync reads every row, also with lag_s (an app whose updated_at stays
    NULL until a row's first update); an incremental run cannot tell such a row changed."""
    with ingest.sqlite() as conn:
        conn.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, title TEXT, updated_at TEXT)")
        conn.execute("INSERT INTO docs VALUES (1, 'updated once', '2025-01-01 10:00:00')")
    settings = ingest.settings(tables={"docs": {"lag_s": 60, "deletes": "reconcile"}}, include=["docs"])
    ingest.run(settings)
    with ingest.sqlite() as conn:
        conn.execute("INSERT INTO docs VALUES (2, 'never updated', NULL)")
    ingest.run(settings)
    assert [r["id"] for r in ingest.rows("docs")] == [1]  # incremental: a NULL cursor is not read

    full = ingest.run(settings, full=True)["docs"]
    rows = {r["id"]: (r["title"], r["_offsite_deleted_at"]) for r in ingest.rows("docs")}
    assert rows == {1: ("updated once", None), 2: ("never updated", None)}
    assert (full.rows_read, full.watermark) == (2, "2025-01-01 10:00:00")


def test_a_full_sync_with_a_lag_never_marks_a_recently_updated_row_deleted(ingest: IngestKit) -> None:
    """deletes: reconcile + lag_s: a row updated within lag_s of the full sync is still in SQLite;
    the full sync merges it but keeps the watermark before now - lag_s, so the lag still guards it."""
    conn = with_orders(ingest)
    conn.executemany("INSERT INTO orders (id, updated_at) VALUES (?, '2025-01-01 10:00:00')", [(1,), (2,), (3,)])
    settings = ingest.settings(tables={"orders": {"lag_s": 300, "deletes": "reconcile"}})
    ingest.run(settings, tables=["orders"])
    conn.execute("UPDATE orders SET doc = 'edited', updated_at = strftime('%Y-%m-%d %H:%M:%S', 'now') WHERE id = 2")
    conn.execute("DELETE FROM orders WHERE id = 1")

    full = ingest.run(settings, tables=["orders"], full=True)["orders"]
    rows = {r["id"]: (r["doc"], r["_offsite_deleted_at"] is not None) for r in ingest.rows("orders")}
    assert rows == {1: (None, True), 2: ("edited", False), 3: (None, False)}
    assert full.watermark == "2025-01-01 10:00:00"  # row 2 is within the lag: the next run reads it again
    assert ingest.run(settings, tables=["orders"])["orders"].rows_read == 1  # 3 (at the watermark); 2 held back
