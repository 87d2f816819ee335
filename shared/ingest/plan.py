"""What to sync per table: the SQLite schema read, the config applied, the BigQuery types chosen.

:func:`discover` lists the tables the config selects; :func:`plan_table` turns one into a
:class:`TablePlan` (mode, key, cursor, columns with their BigQuery types) or raises
:class:`PlanError` naming the table, the setting and what was expected. Defaults come from the
schema: the declared primary key; merge if there is one, else append; the cursor is
``updated_at`` if present, else a single INTEGER primary key declared AUTOINCREMENT (without it,
SQLite gives a deleted newest row's id to the next insert, which an id cursor would skip: such
a merge table is read whole; an append table keeps the id cursor and is flagged ``ids_reused``).
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass

from shared.config.ingest import IngestSettings
from shared.errors import PermanentError
from shared.ingest import types

DELETED_AT = "_offsite_deleted_at"  # stamped by a reconcile on rows missing from SQLite


class PlanError(PermanentError):
    """A table cannot be synced as configured (names the table and the setting)."""


class NotSqlite(PermanentError):
    """The file is not a SQLite database (or its header is damaged): no retry can read it."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(f"ingest.sqlite_path: {path!r} is not a SQLite database ({detail})")
        self.detail = detail


@dataclass(frozen=True)
class Column:
    name: str
    declared: str
    bq_type: str
    hashed: bool = False


@dataclass(frozen=True)
class TablePlan:
    name: str
    mode: str  # append | merge
    key: tuple[str, ...]
    cursor: str | None
    columns: tuple[Column, ...]
    lag_s: int = 0
    deletes: str = "ignore"
    ids_reused: bool = False  # the cursor is an INTEGER PRIMARY KEY without AUTOINCREMENT: SQLite reuses ids

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def cursor_is_time(self) -> bool:
        """A cursor typed as a time (ties likely: an append table needs a key)."""
        return self.cursor is not None and self.column(self.cursor).bq_type in ("TIMESTAMP", "DATETIME", "DATE")

    @property
    def cursor_is_integer(self) -> bool:
        """An INT64 cursor: read with ``>``. Any other (a time, or text such as a ``modified`` column of
        times) is read with ``>=`` and compared as an instant where its values are times (source.py)."""
        return self.cursor is not None and self.column(self.cursor).bq_type == "INT64"

    @property
    def dedupe_on(self) -> tuple[str, ...]:
        """Columns that identify a row in the target: the key, else (append) the unique integer cursor."""
        return self.key or ((self.cursor,) if self.cursor else ())


@dataclass(frozen=True)
class SqliteColumn:
    name: str
    declared: str
    pk_position: int  # 0 = not in the primary key


def connect(path: str) -> sqlite3.Connection:
    """A read-only connection; reads never take the write lock, and autocommit is off for snapshots."""
    from pathlib import Path

    if not Path(path).is_file():
        raise PermanentError(f"ingest.sqlite_path: {path!r} is not a file")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, isolation_level=None)
    try:
        conn.execute("PRAGMA query_only = ON")
        conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()  # SQLite reads the header only now
    except sqlite3.DatabaseError as exc:
        conn.close()
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            raise  # busy, not damaged
        raise NotSqlite(path, str(exc)) from None
    return conn


def sqlite_tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").fetchall()
    return [r[0] for r in rows]


def sqlite_columns(conn: sqlite3.Connection, table: str) -> list[SqliteColumn]:
    rows = conn.execute("SELECT name, type, pk FROM pragma_table_info(?)", (table,)).fetchall()
    return [SqliteColumn(name, declared or "", pk) for name, declared, pk in rows]


def autoincrement(conn: sqlite3.Connection, table: str) -> bool:
    """Whether the table's INTEGER PRIMARY KEY is AUTOINCREMENT (never reuses an id), from its CREATE TABLE."""
    row = conn.execute("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?", (table,)).fetchone()
    return bool(row and row[0] and re.search(r"\bAUTOINCREMENT\b", row[0], re.IGNORECASE))


def cursor_indexed(conn: sqlite3.Connection, plan: TablePlan) -> bool | None:
    """Whether SQLite can find rows past the watermark without reading the whole table: the cursor is
    the INTEGER PRIMARY KEY (the rowid) or the first column of an index. None without a cursor."""
    if plan.cursor is None:
        return None
    found = {c.name: c for c in sqlite_columns(conn, plan.name)}
    cursor = found[plan.cursor]
    if cursor.pk_position and plan.key == (plan.cursor,) and cursor.declared.upper() == "INTEGER":
        return True
    for (index,) in conn.execute("SELECT name FROM pragma_index_list(?)", (plan.name,)).fetchall():
        first = conn.execute("SELECT name FROM pragma_index_info(?) WHERE seqno = 0", (index,)).fetchone()
        if first and first[0] == plan.cursor:
            return True
    return False


def discover(conn: sqlite3.Connection, settings: IngestSettings) -> list[str]:
    """Tables the config selects (include/exclude globs), in name order."""
    return [t for t in sqlite_tables(conn) if settings.selects(t)]


def plan_table(conn: sqlite3.Connection, settings: IngestSettings, table: str) -> TablePlan:
    """The sync plan of one table; :class:`PlanError` if the config does not fit its schema."""
    cfg = settings.table(table)
    found = sqlite_columns(conn, table)
    if not found:
        raise PlanError(f"ingest.tables.{table}: no such table in {settings.sqlite_path!r}")
    names = {c.name for c in found}
    where = f"ingest.tables.{table}"
    for field, wanted in (
        ("key", cfg.key),
        ("include_columns", cfg.include_columns),
        ("hashed_columns", cfg.hashed_columns),
        ("json_columns", cfg.json_columns),
        ("types", tuple(cfg.types)),
        ("cursor", (cfg.cursor,) if cfg.cursor else ()),
        ("tombstone_column", (cfg.tombstone_column,) if cfg.tombstone_column else ()),
    ):
        for name in wanted:
            if name not in names:
                raise PlanError(
                    f"{where}.{field}: column {name!r} is not in the table (columns: {', '.join(sorted(names))})"
                )
    declared_key = tuple(c.name for c in sorted(found, key=lambda c: c.pk_position) if c.pk_position)
    key = cfg.key or declared_key
    mode = cfg.mode or ("merge" if key else "append")
    id_key = _integer_key(found, declared_key)
    reused = id_key is not None and not autoincrement(conn, table)
    cursor = cfg.cursor or _default_cursor(names, id_key, reused=reused, append=mode == "append")
    if mode == "merge" and not key:
        raise PlanError(f"{where}.key: mode 'merge' needs a key and the table declares no primary key")
    if mode == "append" and cursor is None:
        raise PlanError(f"{where}.cursor: mode 'append' needs a cursor column (an autoincrement id or a timestamp)")
    keep = [c for c in found if (not cfg.include_columns or c.name in cfg.include_columns)]
    keep = [c for c in keep if c.name not in cfg.exclude_columns]
    for name in (*key, *((cursor,) if cursor else ())):
        if name not in {c.name for c in keep}:
            raise PlanError(f"{where}.include_columns: key or cursor column {name!r} must be included")
    columns = tuple(_column(table, c, cfg.hashed_columns, cfg.json_columns, cfg.types, settings) for c in keep)
    plan = TablePlan(table, mode, key, cursor, columns, cfg.lag_s, cfg.deletes, reused and cursor == id_key)
    if mode == "append" and not cfg.key and plan.cursor_is_time:
        raise PlanError(f"{where}.key: an append table with a timestamp cursor needs a key to recognise rows")
    if cfg.lag_s and (cursor is None or plan.cursor_is_integer):
        raise PlanError(f"{where}.lag_s: a lag needs a timestamp cursor; {cursor!r} is not one")
    return plan


def _default_cursor(names: set[str], id_key: str | None, *, reused: bool, append: bool) -> str | None:
    """``updated_at``; else the integer key, unless SQLite may reuse its ids and a whole read can do
    without it (a merge table); an append table needs a cursor, so it keeps the id (flagged ids_reused)."""
    if "updated_at" in names:
        return "updated_at"
    return id_key if id_key is not None and (append or not reused) else None


def _integer_key(found: list[SqliteColumn], declared_key: tuple[str, ...]) -> str | None:
    """The single primary key of INTEGER affinity (the id), if the table has one."""
    if len(declared_key) != 1:
        return None
    pk = next(c for c in found if c.name == declared_key[0])
    return pk.name if types.sqlite_affinity(pk.declared) == "INTEGER" else None


def _column(
    table: str,
    col: SqliteColumn,
    hashed: tuple[str, ...],
    json_columns: tuple[str, ...],
    overrides: dict[str, str],
    settings: IngestSettings,
) -> Column:
    if col.name in hashed:
        return Column(col.name, col.declared, "STRING", hashed=True)
    if col.name in overrides:
        bq_type = types.canonical(overrides[col.name])
        if bq_type not in types.BQ_TYPES:
            raise PlanError(
                f"ingest.tables.{table}.types.{col.name}: {overrides[col.name]!r} is not one of {', '.join(types.BQ_TYPES)}"
            )
        return Column(col.name, col.declared, bq_type)
    if col.name in json_columns:
        return Column(col.name, col.declared, "JSON")
    return Column(col.name, col.declared, types.bigquery_type(col.name, col.declared, settings.timestamp_suffixes))
