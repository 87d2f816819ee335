"""Read a table's changed rows from SQLite in batches, converted, checked and hashed.

One read transaction gives one snapshot for the whole run (in WAL mode writers go on
writing; their later commits wait for the next run). Rows come in cursor order, at most
``batch_rows`` at a time, so memory is bounded whatever the table's size. Hashed columns are
replaced by ``HMAC-SHA-256(hash_key, value)`` (hex) here, before a value leaves the process:
staging, BigQuery and logs only ever see the digest.

Which rows: an integer (INT64) cursor > watermark. Any other cursor >= watermark (rows written
in the watermark's own second are re-read; the MERGE or the keyed INSERT makes that
idempotent), compared as the time instant when the values are times (:func:`instant`:
``2025-01-01 11:00:00`` is after ``2025-01-01T10:05:00Z``), else as SQLite orders the values.
With ``lag_s``, an incremental run leaves rows whose cursor is newer than now - lag_s for the
next run. A full sync reads every row, NULL cursors and rows within the lag included (so a
reconcile sees every live key); the lag then only keeps the watermark at or before
now - lag_s. The first run (no watermark) reads every row the lag does not hold back. Later
incremental runs cannot tell whether a row whose cursor is NULL changed: they skip it.
"""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from shared.ingest import types
from shared.ingest.plan import TablePlan
from shared.validation import show

MAX_REPORTED_CELLS = 20
# SQLite admits NULL in a primary key that is not an INTEGER PRIMARY KEY (and in a configured key);
# such a row would never match its copy in BigQuery and be added again on every run.
NULL_KEY = "a merge key must not be NULL"


@dataclass(frozen=True)
class BadCell:
    row: str  # the key (or rowid) of the row, as text
    column: str
    value: str  # a short repr
    expected: str

    def __str__(self) -> str:
        if self.expected == NULL_KEY:
            return f"row {self.row}, key column {self.column!r} is NULL: {NULL_KEY}"
        return f"row {self.row}, column {self.column!r}: {self.value} — {self.expected}"


@dataclass
class Batch:
    """Converted rows of one batch, column-wise, in the plan's column order."""

    columns: dict[str, list[Any]]
    rows: int


@dataclass
class ReadResult:
    rows: int = 0
    watermark: Any = None  # the greatest cursor value read (raw SQLite value)
    bad: list[BadCell] = field(default_factory=list)
    bad_total: int = 0


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def hmac_hex(key: bytes, value: Any) -> str:
    raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
    return hmac.new(key, raw, hashlib.sha256).hexdigest()


def instant(value: str) -> str:
    """SQL of the instant a cursor value stands for, as a Julian day; NULL when it is not a time.

    ISO 8601 text ('T' or space, fraction, 'Z' or an offset with or without its colon; julianday()
    wants the colon) or Unix seconds, the forms docs/ingest.md accepts for timestamps.
    """
    text = f"trim({value})"
    return (
        f"CASE WHEN typeof({value}) IN ('integer', 'real') THEN julianday({value}, 'unixepoch') "
        f"WHEN {text} GLOB '*[+-][0-9][0-9][0-9][0-9]' "
        f"THEN julianday(substr({text}, 1, length({text}) - 2) || ':' || substr({text}, -2)) "
        f"ELSE julianday({text}) END"
    )


@dataclass(frozen=True)
class Bounds:
    """The cursor values one read takes."""

    watermark: Any = None  # the stored watermark (raw SQLite value); None before the first sync
    since: float | None = None  # its instant (Julian day), when it is a time
    until: float | None = None  # now - lag_s (Julian day), with a lag
    full: bool = False  # every row, whatever the watermark and the lag


def bounds(conn: sqlite3.Connection, plan: TablePlan, watermark: Any, full: bool) -> Bounds:
    """The read's bounds; the watermark's instant and the lag's cutoff computed by SQLite, once."""
    if plan.cursor is None or plan.cursor_is_integer:
        return Bounds(watermark, full=full)
    since = None if watermark is None else conn.execute(f"SELECT {instant(':w')}", {"w": watermark}).fetchone()[0]
    until = None
    if plan.lag_s:
        until = conn.execute("SELECT julianday('now', ?)", (f"-{plan.lag_s} seconds",)).fetchone()[0]
    return Bounds(watermark, since, until, full)


def _cursor_filter(plan: TablePlan, bounds: Bounds) -> list[str]:
    """WHERE terms on the cursor (none for a full sync). On times, ``cursor >= floor`` lets an index on
    the cursor serve the read (the floor is a day before the watermark: the text of any later instant,
    whatever its zone, sorts after it); the instant then decides. Values that are not times pass,
    to be reported by the type check."""
    if plan.cursor is None or bounds.full:
        return []
    cur = quote(plan.cursor)
    at = instant(cur)
    where = []
    if bounds.watermark is not None and plan.cursor_is_integer:
        where.append(f"{cur} > :watermark")
    elif bounds.watermark is not None and bounds.since is None:  # text that is no time: SQLite's order
        where.append(f"{cur} >= :watermark")
    elif bounds.watermark is not None:
        floor = "date(:since - 1)" if isinstance(bounds.watermark, str) else ":watermark"
        where += [f"{cur} >= {floor}", f"({at} >= :since OR {at} IS NULL)"]
    if bounds.until is not None:  # only rows placed in time are held back; NULL cursors are not
        where.append(f"({at} <= :until OR {at} IS NULL)")
    return where


def select_sql(plan: TablePlan, bounds: Bounds) -> tuple[str, dict[str, Any]]:
    """The SELECT of the rows to sync and its parameters: ``_offsite_rowid`` (tables without a key;
    a WITHOUT ROWID table always has one), ``_offsite_instant`` (non-integer cursors), then the columns."""
    extra = [] if plan.key else ["rowid AS _offsite_rowid"]
    if plan.cursor is not None and not plan.cursor_is_integer:
        extra.append(f"{instant(quote(plan.cursor))} AS _offsite_instant")
    cols = ", ".join([*extra, *(quote(c) for c in plan.column_names)])
    where = _cursor_filter(plan, bounds)
    sql = f"SELECT {cols} FROM {quote(plan.name)}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    if plan.cursor is not None:
        sql += f" ORDER BY {quote(plan.cursor)}"
    params = {"watermark": bounds.watermark, "since": bounds.since, "until": bounds.until}
    return sql, {k: v for k, v in params.items() if f":{k}" in sql}


class TableReader:
    """Iterates a table's rows to sync as :class:`Batch` es; fills :attr:`result` as it goes."""

    def __init__(
        self, conn: sqlite3.Connection, plan: TablePlan, *, watermark: Any, full: bool, batch_rows: int, hash_key: bytes
    ) -> None:
        self.conn, self.plan = conn, plan
        self.watermark, self.full, self.batch_rows = watermark, full, batch_rows
        self.hash_key = hash_key
        self.result = ReadResult(watermark=watermark)
        self._mark_instant: float | None = None  # the instant of result.watermark, when it is a time

    def batches(self) -> Iterator[Batch]:
        limits = bounds(self.conn, self.plan, self.watermark, self.full)
        self._mark_instant = limits.since
        sql, params = select_sql(self.plan, limits)
        cursor = self.conn.execute(sql, params)
        offset = len(cursor.description) - len(self.plan.column_names)  # _offsite_rowid, _offsite_instant
        index = {name: offset + i for i, name in enumerate(self.plan.column_names)}
        cursor_at = index.get(self.plan.cursor or "")
        while rows := cursor.fetchmany(self.batch_rows):
            batch = Batch({name: [] for name in self.plan.column_names}, len(rows))
            for row in rows:
                self._convert(row, index, batch)
            if cursor_at is not None and self.plan.cursor_is_integer:  # in cursor order: the last is the greatest
                self._advance(rows[-1][cursor_at], None)
            elif cursor_at is not None:
                for row in rows:
                    if limits.until is None or row[offset - 1] is None or row[offset - 1] <= limits.until:
                        self._advance(row[cursor_at], row[offset - 1])
            self.result.rows += len(rows)
            yield batch

    def _advance(self, value: Any, at: float | None) -> None:
        """Make ``value`` (its instant ``at``) the watermark if it comes after the current one: by instant
        when both are times, a time after any value that is not one, else in SQLite's order."""
        mark, mark_at = self.result.watermark, self._mark_instant
        if value is None:
            return
        if mark is None or (at is not None and (mark_at is None or at > mark_at)):
            newer = True
        else:
            newer = at is None and mark_at is None and greater(value, mark)
        if newer:
            self.result.watermark, self._mark_instant = value, at

    def _convert(self, row: tuple[Any, ...], index: dict[str, int], batch: Batch) -> None:
        for col in self.plan.columns:
            value = row[index[col.name]]
            if value is None and col.name in self.plan.dedupe_on:  # NULL = NULL is never true in the MERGE
                batch.columns[col.name].append(None)
                self._bad(row, index, col.name, value, NULL_KEY)
                continue
            if col.hashed:
                batch.columns[col.name].append(None if value is None else hmac_hex(self.hash_key, value))
                continue
            try:
                batch.columns[col.name].append(types.convert(col.bq_type, value))
            except types.BadValue as exc:
                batch.columns[col.name].append(None)
                self._bad(row, index, col.name, value, str(exc))

    def _bad(self, row: tuple[Any, ...], index: dict[str, int], column: str, value: Any, expected: str) -> None:
        self.result.bad_total += 1
        if len(self.result.bad) < MAX_REPORTED_CELLS:
            ident = ", ".join(f"{k}={row[index[k]]!r}" for k in self.plan.key) if self.plan.key else f"rowid={row[0]}"
            self.result.bad.append(BadCell(ident, column, show(value, 40), expected))


def greater(a: Any, b: Any) -> bool:
    """SQLite's order between values of possibly different storage classes (numbers < text < blobs)."""

    def rank(v: Any) -> int:
        return 0 if isinstance(v, int | float) else 1 if isinstance(v, str) else 2

    return (rank(a), a) > (rank(b), b)
