"""Rows an id cursor used to skip (ids SQLite reuses) and values an added column used to miss (its DEFAULT)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.ingest.conftest import IngestKit
from tests.ingest.test_cli import config_file, invoke


def reuse_the_newest_id(kit: IngestKit) -> None:
    """Without AUTOINCREMENT SQLite gives the next row max(rowid) + 1: a deleted newest id comes back."""
    with kit.sqlite() as conn:
        conn.execute("DELETE FROM chat WHERE id = 3")
        conn.execute("INSERT INTO chat (body) VALUES ('four')")
        assert conn.execute("SELECT id FROM chat WHERE body = 'four'").fetchone() == (3,)


def chat(kit: IngestKit) -> list[tuple[int, str]]:
    return [(r["id"], r["body"]) for r in kit.rows("chat")]


def test_a_reused_id_of_a_merge_table_syncs_on_the_next_run(ingest: IngestKit) -> None:
    """A plain INTEGER PRIMARY KEY is no default cursor: the table is read whole and merged by key."""
    with ingest.sqlite() as conn:
        conn.execute("CREATE TABLE chat (id INTEGER PRIMARY KEY, body TEXT)")
        conn.executemany("INSERT INTO chat (body) VALUES (?)", [("one",), ("two",), ("three",)])
    settings = ingest.settings(include=["chat"], tables={})
    assert ingest.run(settings)["chat"].status == "synced"
    reuse_the_newest_id(ingest)
    assert ingest.run(settings)["chat"].status == "synced"
    assert chat(ingest) == [(1, "one"), (2, "two"), (3, "four")]


def test_a_reused_id_of_an_append_table_is_flagged_and_repaired_by_the_full_sync(
    ingest: IngestKit, tmp_path: Path
) -> None:
    with ingest.sqlite() as conn:
        conn.execute("CREATE TABLE chat (id INTEGER PRIMARY KEY, body TEXT)")
        conn.executemany("INSERT INTO chat (body) VALUES (?)", [("one",), ("two",), ("three",)])
    settings = ingest.settings(include=["chat"], tables={"chat": {"mode": "append"}})
    assert (ingest.run(settings)["chat"].status, chat(ingest)[-1]) == ("synced", (3, "three"))
    reuse_the_newest_id(ingest)
    ingest.run(settings)  # the id cursor is past 3: as documented, the incremental run cannot see it
    assert ingest.run(settings, full=True)["chat"].status == "synced"
    assert chat(ingest) == [(1, "one"), (2, "two"), (3, "four")]
    listed = invoke(config_file(ingest, tmp_path, include=["chat"], tables={"chat": {"mode": "append"}}), "tables")
    assert "id cursor without AUTOINCREMENT: a reused id syncs at the next full sync" in listed.output


def test_an_added_column_reaches_older_rows_with_its_default(ingest: IngestKit, tmp_path: Path) -> None:
    """SQLite shows an added column's DEFAULT on rows written before it; the run that adds the column
    to BigQuery reads the table whole, so those rows get it too (append and merge tables)."""
    with ingest.sqlite() as conn:
        conn.executemany("INSERT INTO messages (user_id, body) VALUES (?, ?)", [(1, "a"), (2, "b")])
        conn.execute("INSERT INTO users (id, name, updated_at) VALUES (1, 'ada', '2025-01-01 00:00:00')")
    ingest.run()
    with ingest.sqlite() as conn:
        conn.execute("ALTER TABLE messages ADD COLUMN channel TEXT NOT NULL DEFAULT 'web'")
        conn.execute("ALTER TABLE users ADD COLUMN plan TEXT DEFAULT 'free'")
        conn.execute("INSERT INTO messages (user_id, body) VALUES (3, 'c')")
    out = ingest.run()
    assert (out["messages"].columns_added, out["users"].columns_added) == (["channel"], ["plan"])
    assert [(r["id"], r["channel"]) for r in ingest.rows("messages")] == [(1, "web"), (2, "web"), (3, "web")]
    assert [(r["id"], r["plan"]) for r in ingest.rows("users")] == [(1, "free")]
    assert json.loads(str(out["messages"].watermark)) == 3  # incremental again from here
    assert ingest.run()["messages"].status == "empty"
