"""Incremental sync on a real SQLite file into the local BigQuery: inserts, updates, empty runs."""

from __future__ import annotations

import hashlib
import hmac

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
