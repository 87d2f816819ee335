"""Incremental sync on a real SQLite file into the local BigQuery: inserts, updates, empty runs."""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
from pathlib import Path

import pytest

from tests.ingest.conftest import HASH_KEY, IngestKit


def add_users(kit: IngestKit, *rows: tuple[int, str, str, str]) -> None:
    with kit.sqlite() as conn:
        conn.executemany(
            "INSERT INTO users (id, name, api_key, score, created_at, updated_at) VALUES (?, ?, ?, 1.5, ?, ?)",
            [(i, name, key, ts, ts) for i, name, key, ts in rows],
        )


def test_first_sync_creates_tables_and_a_second_sync_brings_inserts_and_updates(ingest: IngestKit) -> None:
    add_users(ingest, (1, "ada", "key-1", "2025-01-01 10:00:00"), (2, "bob", "key-2", "2025-01-01 10:00:01"))
    with ingest.sqlite() as conn:
        conn.executemany("INSERT INTO messages (user_id, body, sent_at) VALUES (?, ?, ?)", [(1, "hi", None)] * 3)

    first = ingest.run()
    assert (first["users"].status, first["users"].rows_read) == ("synced", 2)
    assert (first["messages"].status, first["messages"].rows_read, first["messages"].watermark) == ("synced", 3, 3)
    users = ingest.rows("users")
    assert [(u["id"], u["name"]) for u in users] == [(1, "ada"), (2, "bob")]
    assert users[0]["created_at"].isoformat() == "2025-01-01T10:00:00+00:00"  # seed 002's name rule: TIMESTAMP

    with ingest.sqlite() as conn:
        conn.execute("UPDATE users SET name = 'ada lovelace', updated_at = '2025-01-02 09:00:00' WHERE id = 1")
        conn.execute("INSERT INTO messages (user_id, body) VALUES (2, 'new')")
    second = ingest.run()
    assert second["messages"].rows_read == 1
    assert [u["name"] for u in ingest.rows("users")] == ["ada lovelace", "bob"]
    assert [m["id"] for m in ingest.rows("messages")] == [1, 2, 3, 4]
    assert second["users"].watermark == "2025-01-02 09:00:00"


def test_an_empty_run_changes_nothing(ingest: IngestKit) -> None:
    with ingest.sqlite() as conn:
        conn.execute("INSERT INTO messages (user_id, body) VALUES (1, 'only')")
    ingest.run(tables=["messages"])
    before = ingest.rows("messages")
    again = ingest.run(tables=["messages"])
    assert again["messages"].status == "empty"
    assert again["messages"].rows_read == 0
    assert ingest.rows("messages") == before
    assert not [t for t in ingest.tables() if t.startswith("_offsite_stage_")]


def test_hashed_columns_never_reach_bigquery_in_clear(ingest: IngestKit) -> None:
    add_users(ingest, (1, "ada", "sk-live-SECRET-1", "2025-01-01 10:00:00"))
    ingest.run(tables=["users"])
    stored = ingest.rows("users")[0]["api_key"]
    assert stored == hmac.new(HASH_KEY.encode(), b"sk-live-SECRET-1", hashlib.sha256).hexdigest()


def test_a_without_rowid_table_syncs_like_any_other(ingest: IngestKit) -> None:
    """Seed 001's junction tables are WITHOUT ROWID: there is no rowid to select."""
    with ingest.sqlite() as conn:
        conn.execute(
            "CREATE TABLE user_cohorts (user_id INTEGER NOT NULL, cohort_id INTEGER NOT NULL, "
            "updated_at TEXT NOT NULL, PRIMARY KEY (user_id, cohort_id)) WITHOUT ROWID"
        )
        conn.execute("INSERT INTO user_cohorts VALUES (1, 2, '2025-01-01 10:00:00')")
    add_users(ingest, (1, "ada", "key-1", "2025-01-01 10:00:00"))
    out = ingest.run()  # in name order: messages, user_cohorts, users
    assert (out["user_cohorts"].status, out["users"].status) == ("synced", "synced")
    assert [(r["user_id"], r["cohort_id"]) for r in ingest.rows("user_cohorts", order="user_id")] == [(1, 2)]


def test_a_table_sqlite_cannot_read_fails_alone_and_names_itself(ingest: IngestKit) -> None:
    """A damaged table (SQLITE_CORRUPT on its pages) is that table's permanent failure; the tables
    after it still sync."""
    with ingest.sqlite() as conn:
        conn.execute("PRAGMA journal_mode = DELETE")  # every page in the main file, none in a WAL
        conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, body TEXT)")
        conn.executemany("INSERT INTO events VALUES (?, ?)", [(i, "x" * 500) for i in range(50)])
        root, size = conn.execute(
            "SELECT rootpage, (SELECT page_size FROM pragma_page_size) FROM sqlite_schema WHERE name = 'events'"
        ).fetchone()
    add_users(ingest, (1, "ada", "key-1", "2025-01-01 10:00:00"))
    with ingest.db.open("r+b") as db:  # the table's root page: an interior page whose header is now garbage
        db.seek((root - 1) * size)
        db.write(b"\xff" * 16)
    out = ingest.run()  # in name order: events, messages, users
    assert (out["events"].status, out["events"].transient) == ("failed", False)
    assert (out["events"].error or "").startswith("table events: SQLite could not read it: ")
    assert (out["messages"].status, out["users"].status) == ("empty", "synced")


def test_a_busy_or_locked_database_is_a_transient_table_failure(tmp_path: Path) -> None:
    """SQLITE_BUSY from a real lock: the table is retried later; other SQLite errors are permanent."""
    from shared.errors import PermanentError, TransientError
    from shared.ingest.engine import table_error

    path = tmp_path / "locked.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    writer.execute("BEGIN EXCLUSIVE")
    reader = sqlite3.connect(path, timeout=0)
    with pytest.raises(sqlite3.OperationalError) as locked:
        reader.execute("SELECT * FROM t")
    with pytest.raises(sqlite3.OperationalError) as missing:
        writer.execute("SELECT * FROM nope")
    writer.execute("ROLLBACK")
    busy = table_error("t", locked.value)
    assert isinstance(busy, TransientError) and str(busy) == "table t: SQLite could not read it: database is locked"
    assert type(table_error("t", missing.value)) is PermanentError
