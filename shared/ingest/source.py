"""Read a table's changed rows from SQLite in batches, converted, checked and hashed.

One read transaction gives one snapshot for the whole run (in WAL mode writers go on
writing; their later commits wait for the next run). Rows come in cursor order, at most
``batch_rows`` at a time, so memory is bounded whatever the table's size. Hashed columns are
replaced by ``HMAC-SHA-256(hash_key, value)`` (hex) here, before a value leaves the process:
staging, BigQuery and logs only ever see the digest.

Which rows: cursor > watermark for integer cursors; cursor >= watermark for timestamp cursors
(rows written in the watermark's own second are re-read; the MERGE or the keyed INSERT makes
that idempotent); with ``lag_s``, rows whose cursor is newer than now - lag_s are left for the
next run. A full sync reads every row.
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


@dataclass(frozen=True)
class BadCell:
    row: str  # the key (or rowid) of the row, as text
    column: str
    value: str  # a short repr
    expected: str

    def __str__(self) -> str:
        return f"row {self.row}, column {self.column!r}: {self.value} — {self.expected}"


@dataclass
class Batch:
    """Converted rows of one batch, column-wise, in the plan's column order."""

    columns: dict[str, list[Any]]
    rows: int
    last_cursor: Any = None


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


def select_sql(plan: TablePlan, watermark: Any, full: bool) -> tuple[str, list[Any]]:
    """The SELECT of the rows to sync and its parameters."""
    cols = ", ".join(quote(c) for c in plan.column_names)
    where: list[str] = []
    params: list[Any] = []
    if plan.cursor is not None:
        cur = quote(plan.cursor)
        if watermark is not None and not full:
            where.append(f"{cur} {'>=' if plan.cursor_is_time else '>'} ?")
            params.append(watermark)
        if plan.lag_s:
            where.append(
                f"(CASE typeof({cur}) WHEN 'text' THEN julianday({cur}) <= julianday('now', ?) "
                f"ELSE {cur} <= unixepoch('now') - ? END)"
            )
            params += [f"-{plan.lag_s} seconds", plan.lag_s]
    sql = f"SELECT rowid AS _offsite_rowid, {cols} FROM {quote(plan.name)}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    if plan.cursor is not None:
        sql += f" ORDER BY {quote(plan.cursor)}"
    return sql, params


class TableReader:
    """Iterates a table's rows to sync as :class:`Batch` es; fills :attr:`result` as it goes."""

    def __init__(
        self, conn: sqlite3.Connection, plan: TablePlan, *, watermark: Any, full: bool, batch_rows: int, hash_key: bytes
    ) -> None:
        self.conn, self.plan = conn, plan
        self.watermark, self.full, self.batch_rows = watermark, full, batch_rows
        self.hash_key = hash_key
        self.result = ReadResult(watermark=watermark)

    def batches(self) -> Iterator[Batch]:
        sql, params = select_sql(self.plan, self.watermark, self.full)
        cursor = self.conn.execute(sql, params)
        index = {name: i + 1 for i, name in enumerate(self.plan.column_names)}
        cursor_at = index.get(self.plan.cursor or "")
        while rows := cursor.fetchmany(self.batch_rows):
            batch = Batch({name: [] for name in self.plan.column_names}, len(rows))
            for row in rows:
                self._convert(row, index, batch)
            if cursor_at is not None:
                batch.last_cursor = rows[-1][cursor_at]
                if self.result.watermark is None or greater(batch.last_cursor, self.result.watermark):
                    self.result.watermark = batch.last_cursor
            self.result.rows += len(rows)
            yield batch

    def _convert(self, row: tuple[Any, ...], index: dict[str, int], batch: Batch) -> None:
        for col in self.plan.columns:
            value = row[index[col.name]]
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
