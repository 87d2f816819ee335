"""Schema changes: additions arrive by themselves; an incompatible change stops that table only;
values a type cannot hold are reported per row and column."""

from __future__ import annotations

from shared.ingest.target import existing_schema
from tests.ingest.conftest import IngestKit


def seed(kit: IngestKit) -> None:
    with kit.sqlite() as conn:
        conn.execute("INSERT INTO users (id, name, updated_at) VALUES (1, 'ada', '2025-01-01 00:00:00')")
        conn.execute("INSERT INTO messages (user_id, body) VALUES (1, 'hi')")


def test_a_new_sqlite_column_is_added_to_bigquery(ingest: IngestKit) -> None:
    seed(ingest)
    ingest.run()
    with ingest.sqlite() as conn:
        conn.execute("ALTER TABLE users ADD COLUMN plan TEXT")
        conn.execute("ALTER TABLE users ADD COLUMN trial_end TEXT")
        conn.execute(
            "UPDATE users SET plan = 'pro', trial_end = '2025-02-01T00:00:00Z', updated_at = '2025-01-02 00:00:00'"
        )
    outcome = ingest.run()["users"]
    assert (outcome.status, outcome.columns_added) == ("synced", ["plan", "trial_end"])
    row = ingest.rows("users")[0]
    assert row["plan"] == "pro"
    assert row["trial_end"].isoformat() == "2025-02-01T00:00:00+00:00"
    assert existing_schema(ingest.client, f"{ingest.stack.project}.{ingest.dataset}.users") == {
        "id": "INT64",
        "name": "STRING",
        "api_key": "STRING",
        "score": "FLOAT64",
        "created_at": "TIMESTAMP",
        "updated_at": "TIMESTAMP",
        "plan": "STRING",
        "trial_end": "TIMESTAMP",
    }
    assert ingest.run()["users"].columns_added == []


def test_an_incompatible_change_stops_that_table_only_and_names_column_and_types(ingest: IngestKit) -> None:
    seed(ingest)
    ingest.run()
    with ingest.sqlite() as conn:  # SQLite cannot change a column's type: rebuild the table, as apps do
        conn.executescript(
            """
            CREATE TABLE messages2 (id INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL, body TEXT, sent_at TEXT);
            INSERT INTO messages2 SELECT id, 'u' || user_id, body, sent_at FROM messages;
            INSERT INTO messages2 (user_id, body) VALUES ('u2', 'after');
            DROP TABLE messages;
            ALTER TABLE messages2 RENAME TO messages;
            UPDATE users SET name = 'ada l', updated_at = '2025-01-03 00:00:00';
            """
        )
    second = ingest.run()
    assert second["messages"].status == "failed"
    assert "column 'user_id' is INT64 in BigQuery but STRING from SQLite" in (second["messages"].error or "")
    assert second["users"].status == "synced"
    assert [m["user_id"] for m in ingest.rows("messages")] == [1]  # nothing lost, nothing changed
    assert ingest.rows("users")[0]["name"] == "ada l"
    assert ingest.run()["messages"].status == "failed"  # stays stopped until someone acts


def test_a_changed_merge_key_stops_the_table(ingest: IngestKit) -> None:
    seed(ingest)
    ingest.run(tables=["users"])
    settings = ingest.settings(
        tables={"users": {"key": ["id", "name"], "hashed_columns": ["api_key"]}, "messages": {"mode": "append"}}
    )
    outcome = ingest.run(settings, tables=["users"])["users"]
    assert outcome.status == "failed"
    assert "merge key changed from (id) to (id, name)" in (outcome.error or "")


def test_values_a_column_type_cannot_hold_are_reported_per_row_and_column(ingest: IngestKit) -> None:
    with ingest.sqlite() as conn:
        conn.execute("INSERT INTO messages (user_id, body) VALUES (1, 'fine')")
        conn.execute("INSERT INTO messages (user_id, body) VALUES ('not-a-number', 'bad')")  # SQLite allows it
        conn.execute("INSERT INTO messages (user_id, body, sent_at) VALUES (3, 'bad too', 'yesterday-ish')")
    outcome = ingest.run(tables=["messages"])["messages"]
    assert outcome.status == "failed"
    assert "2 value(s)" in (outcome.error or "")
    assert "row id=2, column 'user_id': 'not-a-number' — expected an integer (INT64)" in (outcome.error or "")
    assert "row id=3, column 'sent_at': 'yesterday-ish'" in (outcome.error or "")
    assert ingest.rows("messages") == []  # nothing applied, the watermark did not move
    with ingest.sqlite() as conn:
        conn.execute("UPDATE messages SET user_id = 2 WHERE id = 2")
        conn.execute("UPDATE messages SET sent_at = '2025-01-01 10:00' WHERE id = 3")
    assert ingest.run(tables=["messages"])["messages"].rows_read == 3
