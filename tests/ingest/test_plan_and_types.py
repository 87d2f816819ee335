"""Type mapping, value checks and plans on real SQLite schemas (no BigQuery needed)."""

from __future__ import annotations

import datetime as dt
import decimal
import sqlite3
from pathlib import Path

import pytest

from shared.config.ingest import IngestSettings
from shared.ingest import types
from shared.ingest.plan import PlanError, connect, discover, plan_table


@pytest.mark.parametrize(
    ("column", "declared", "expected"),
    [
        ("n", "INTEGER", "INT64"),
        ("n", "BIGINT", "INT64"),
        ("f", "REAL", "FLOAT64"),
        ("f", "DOUBLE PRECISION", "FLOAT64"),
        ("s", "VARCHAR(20)", "STRING"),
        ("s", "TEXT", "STRING"),
        ("b", "BLOB", "BYTES"),
        ("d", "DECIMAL(10,2)", "NUMERIC"),
        ("d", "NUMERIC", "NUMERIC"),
        ("ok", "BOOLEAN", "BOOL"),
        ("day", "DATE", "DATE"),
        ("at", "DATETIME", "DATETIME"),
        ("x", "TIMESTAMP", "TIMESTAMP"),
        ("doc", "JSON", "JSON"),
        ("created_at", "TEXT", "TIMESTAMP"),
        ("window_start", "INTEGER", "TIMESTAMP"),
        ("last_timestamp", "", "TIMESTAMP"),
        ("misc", "", "STRING"),
    ],
)
def test_bigquery_type_from_declared_type_affinity_and_name(column: str, declared: str, expected: str) -> None:
    assert types.bigquery_type(column, declared, ("_timestamp", "_at", "_start", "_end")) == expected


def test_the_name_rule_is_configurable() -> None:
    assert types.bigquery_type("created_at", "TEXT", ()) == "STRING"


@pytest.mark.parametrize(
    ("bq_type", "value", "expected"),
    [
        ("INT64", 5, 5),
        ("FLOAT64", 2, 2.0),
        ("NUMERIC", 1.25, decimal.Decimal("1.25")),
        ("NUMERIC", "10.5", decimal.Decimal("10.5")),
        ("BOOL", 1, True),
        ("BOOL", "false", False),
        ("TIMESTAMP", "2025-01-08 10:00:00", dt.datetime(2025, 1, 8, 10, tzinfo=dt.UTC)),
        ("TIMESTAMP", "2025-01-08T12:00:00+02:00", dt.datetime(2025, 1, 8, 10, tzinfo=dt.UTC)),
        ("TIMESTAMP", 0, dt.datetime(1970, 1, 1, tzinfo=dt.UTC)),
        ("DATETIME", "2025-01-08T10:00:00.5", dt.datetime(2025, 1, 8, 10, 0, 0, 500000)),
        ("DATE", "2025-01-08", dt.date(2025, 1, 8)),
        ("JSON", '{"a": 1}', '{"a": 1}'),
        ("STRING", None, None),
    ],
)
def test_values_convert(bq_type: str, value: object, expected: object) -> None:
    assert types.convert(bq_type, value) == expected


@pytest.mark.parametrize(
    ("bq_type", "value", "message"),
    [
        ("INT64", "abc", "expected an integer"),
        ("INT64", 1.5, "expected an integer"),
        ("FLOAT64", "x", "expected a number"),
        ("NUMERIC", "1.0000000001", "at most 9 decimal places"),
        ("BOOL", 2, "expected a boolean"),
        ("TIMESTAMP", "2025-13-01", "valid date/time"),
        ("DATETIME", "2025-01-01T00:00:00Z", "without a zone"),
        ("DATE", "01/02/2025", "YYYY-MM-DD"),
        ("JSON", "{nope", "expected JSON"),
        ("STRING", 5, "expected text"),
        ("BYTES", "text", "expected a BLOB"),
    ],
)
def test_values_a_type_cannot_hold_are_refused_not_cast(bq_type: str, value: object, message: str) -> None:
    with pytest.raises(types.BadValue, match=message):
        types.convert(bq_type, value)


def make_db(tmp_path: Path, ddl: str) -> str:
    path = tmp_path / "p.db"
    conn = sqlite3.connect(path)
    conn.executescript(ddl)
    conn.close()
    return str(path)


def settings(path: str, **kw: object) -> IngestSettings:
    return IngestSettings.model_validate({"sqlite_path": path, "dataset": "d", **kw})


def test_defaults_come_from_the_schema(tmp_path: Path) -> None:
    path = make_db(
        tmp_path,
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, updated_at TEXT);"
        "CREATE TABLE chat (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT);"
        "CREATE TABLE memberships (user_id INTEGER, org_id INTEGER, role TEXT, PRIMARY KEY (user_id, org_id));"
        "CREATE TABLE tmp_cache (k TEXT);",
    )
    cfg = settings(path, exclude=["tmp_*"], tables={"chat": {"mode": "append"}})
    conn = connect(path)
    assert discover(conn, cfg) == ["chat", "memberships", "users"]  # sqlite_sequence and tmp_* left out
    users = plan_table(conn, cfg, "users")
    assert (users.mode, users.key, users.cursor) == ("merge", ("id",), "updated_at")
    chat = plan_table(conn, cfg, "chat")
    assert (chat.mode, chat.key, chat.cursor) == ("append", ("id",), "id")
    both = plan_table(conn, cfg, "memberships")
    assert (both.mode, both.key, both.cursor) == ("merge", ("user_id", "org_id"), None)


def test_plan_errors_name_the_table_setting_and_expectation(tmp_path: Path) -> None:
    path = make_db(
        tmp_path, "CREATE TABLE log (body TEXT); CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, a TEXT);"
    )
    conn = connect(path)
    with pytest.raises(PlanError, match=r"ingest.tables.log.cursor: mode 'append' needs a cursor column"):
        plan_table(conn, settings(path), "log")
    with pytest.raises(PlanError, match=r"ingest.tables.t.hashed_columns: column 'nope' is not in the table"):
        plan_table(conn, settings(path, hash_key="k", tables={"t": {"hashed_columns": ["nope"]}}), "t")
    with pytest.raises(PlanError, match=r"ingest.tables.t.lag_s: a lag needs a timestamp cursor; 'id' is not one"):
        plan_table(conn, settings(path, tables={"t": {"lag_s": 5}}), "t")


def test_config_errors_name_field_value_and_expectation(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from shared.validation import describe

    with pytest.raises(ValidationError) as info:
        IngestSettings.model_validate(
            {
                "sqlite_path": "x.db",
                "dataset": "bad-name",
                "batch_rows": 0,
                "tables": {"u": {"mode": "upsert", "hashed_columns": ["k"]}},
            }
        )
    lines = describe(info.value, root="ingest", model=IngestSettings)
    assert "ingest.dataset: 'bad-name' is not a valid BigQuery dataset id" in lines
    assert "ingest.batch_rows: 0 must be at least 1" in lines
    assert "ingest.tables.u.mode: 'upsert' is not 'append' or 'merge'" in lines


@pytest.mark.parametrize(
    ("target", "source", "ok"),
    [
        ("INT64", "INT64", True),
        ("INTEGER", "INT64", True),  # BigQuery's alias
        ("FLOAT64", "INT64", True),  # REAL → INTEGER in SQLite: the FLOAT64 column takes integers
        ("NUMERIC", "INT64", True),
        ("INT64", "FLOAT64", False),  # narrowed
        ("INT64", "STRING", False),
        ("STRING", "JSON", False),  # the MERGE would write JSON into a STRING column
        ("TIMESTAMP", "DATETIME", False),
    ],
)
def test_which_type_changes_a_target_column_takes(target: str, source: str, ok: bool) -> None:
    assert types.compatible(target, source) is ok


def test_a_text_cursor_of_times_takes_a_lag_and_rereads_ties(tmp_path: Path) -> None:
    """cursor: modified (TEXT, not named like a time): STRING in BigQuery, but read like a timestamp
    cursor (>=, instants, lag allowed); only an INT64 cursor is read with > and refuses a lag."""
    path = make_db(tmp_path, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, modified TEXT NOT NULL);")
    plan = plan_table(connect(path), settings(path, tables={"notes": {"cursor": "modified", "lag_s": 5}}), "notes")
    assert (plan.column("modified").bq_type, plan.cursor_is_integer, plan.lag_s) == ("STRING", False, 5)
