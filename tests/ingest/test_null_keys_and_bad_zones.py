"""Rows a MERGE cannot place (NULL keys) and times no UTC clock can read (bad zones): reported, per table."""

from __future__ import annotations

import io
import sys

import pytest

from shared import log
from shared.ingest import types
from tests.ingest.conftest import IngestKit


def test_a_null_primary_key_is_reported_and_never_duplicated(ingest: IngestKit) -> None:
    """SQLite admits NULL in a TEXT PRIMARY KEY of a rowid table; MERGE's ``T.code = S.code`` never
    matches it, so the row used to be added again on every run that re-read it."""
    with ingest.sqlite() as conn:
        conn.execute("CREATE TABLE coupons (code TEXT PRIMARY KEY, amount INTEGER, updated_at TEXT)")
        conn.execute("INSERT INTO coupons VALUES ('A', 1, '2025-01-01 10:00:00')")
        conn.execute("INSERT INTO coupons VALUES (NULL, 2, '2025-01-01 10:00:05')")
    settings = ingest.settings(include=["coupons"], tables={})
    first = ingest.run(settings)["coupons"]
    assert first.status == "failed"
    assert "row code=None, key column 'code' is NULL: a merge key must not be NULL" in (first.error or "")
    again = ingest.run(settings, full=True)["coupons"]
    assert again.status == "failed"  # nothing applied, as for any value the target cannot hold
    with ingest.sqlite() as conn:
        conn.execute("UPDATE coupons SET code = 'B' WHERE code IS NULL")
    assert ingest.run(settings)["coupons"].status == "synced"
    assert ingest.run(settings)["coupons"].status == "synced"  # re-reads the watermark's second
    assert [(r["code"], r["amount"]) for r in ingest.rows("coupons", order="amount")] == [("A", 1), ("B", 2)]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2025-01-01T10:00:00+24:00", "expected a UTC offset within ±23:59"),
        ("2025-01-01 10:00:00-2400", "expected a UTC offset within ±23:59"),
        ("0001-01-01T00:30:00+01:00", "expected a time within years 1–9999 in UTC"),
        ("9999-12-31T23:30:00-01:00", "expected a time within years 1–9999 in UTC"),
    ],
)
def test_a_timestamp_no_utc_time_can_hold_is_a_bad_value(value: str, message: str) -> None:
    with pytest.raises(types.BadValue, match=message):
        types.convert("TIMESTAMP", value)


def test_a_bad_zone_fails_its_table_only(ingest: IngestKit) -> None:
    with ingest.sqlite() as conn:
        conn.execute("CREATE TABLE aaa (id INTEGER PRIMARY KEY, seen_at TEXT)")
        conn.execute("INSERT INTO aaa VALUES (1, '2025-01-01T10:00:00+24:00')")
        conn.execute("INSERT INTO messages (user_id, body) VALUES (1, 'hi')")
    out = ingest.run(ingest.settings(include=["aaa", "messages"], tables={"messages": {"mode": "append"}}))
    assert out["aaa"].status == "failed"
    assert "row id=1, column 'seen_at': '2025-01-01T10:00:00+24:00' — expected a UTC offset" in (out["aaa"].error or "")
    assert (out["messages"].status, out["messages"].rows_read) == ("synced", 1)  # the table after it still ran


def test_an_unexpected_error_fails_its_table_only_and_logs_its_traceback(ingest: IngestKit) -> None:
    """JSON nested deeper than Python's parser recurses raises RecursionError, no error of ours: it used
    to end the whole run; now that table fails, named, the others go on, and the traceback is logged."""
    with ingest.sqlite() as conn:
        conn.execute("CREATE TABLE aaa (id INTEGER PRIMARY KEY, doc JSON)")
        conn.execute("INSERT INTO aaa VALUES (1, ?)", ("[" * 100_000 + "]" * 100_000,))
        conn.execute("INSERT INTO messages (user_id, body) VALUES (1, 'hi')")
    logged = io.StringIO()
    log.configure("json", stream=logged)
    try:
        out = ingest.run(ingest.settings(include=["aaa", "messages"], tables={"messages": {"mode": "append"}}))
    finally:
        log.configure(stream=sys.__stderr__)  # fd 2: still captured by pytest, never closed
    assert out["aaa"].status == "failed"
    assert "table aaa: unexpected error, this table stopped: RecursionError" in (out["aaa"].error or "")
    assert (out["messages"].status, out["messages"].rows_read) == ("synced", 1)
    assert "Traceback" in logged.getvalue()
