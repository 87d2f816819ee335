"""The server's SQLite metadata store: schema, transactions, id counters, data-dir lock.

One process owns a data dir (an exclusive ``flock`` on ``DATA_DIR/lock``); inside it every
statement goes through one connection under one lock, and every check-then-write runs in
one ``BEGIN IMMEDIATE`` transaction, so concurrent requests cannot both create the same
name. WAL mode keeps committed metadata across crashes and restarts.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS items (
  id INTEGER PRIMARY KEY,
  type TEXT NOT NULL CHECK (type IN ('folder', 'file')),
  parent_id INTEGER,
  name TEXT NOT NULL,
  name_key TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  etag INTEGER NOT NULL DEFAULT 0,
  sequence_id INTEGER NOT NULL DEFAULT 0,
  created_at TEXT, modified_at TEXT, content_created_at TEXT, content_modified_at TEXT,
  created_by TEXT, modified_by TEXT, owned_by TEXT,
  version_id INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS items_parent_name ON items (parent_id, name_key);
CREATE TABLE IF NOT EXISTS versions (
  id INTEGER PRIMARY KEY,
  file_id INTEGER NOT NULL,
  number INTEGER NOT NULL,
  sha1 TEXT NOT NULL,
  size INTEGER NOT NULL,
  name TEXT NOT NULL,
  created_at TEXT, modified_at TEXT, modified_by TEXT
);
CREATE INDEX IF NOT EXISTS versions_file ON versions (file_id);
CREATE TABLE IF NOT EXISTS upload_sessions (
  id TEXT PRIMARY KEY,
  folder_id INTEGER, file_id INTEGER, file_name TEXT,
  file_size INTEGER NOT NULL, part_size INTEGER NOT NULL, total_parts INTEGER NOT NULL,
  created_at REAL NOT NULL, expires_at REAL NOT NULL,
  state TEXT NOT NULL, result_file_id INTEGER, user_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS upload_parts (
  session_id TEXT NOT NULL, offset INTEGER NOT NULL, size INTEGER NOT NULL,
  sha1 TEXT NOT NULL, part_id TEXT NOT NULL,
  PRIMARY KEY (session_id, offset)
);
CREATE TABLE IF NOT EXISTS users (
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, login TEXT NOT NULL,
  enterprise_id TEXT, created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS apps (
  client_id TEXT PRIMARY KEY, client_secret TEXT NOT NULL, enterprise_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jwt_keys (
  client_id TEXT NOT NULL, kid TEXT NOT NULL, pem TEXT NOT NULL, PRIMARY KEY (client_id, kid)
);
CREATE TABLE IF NOT EXISTS tokens (
  token TEXT PRIMARY KEY, kind TEXT NOT NULL, user_id TEXT NOT NULL, client_id TEXT,
  expires_at REAL, revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS refresh_tokens (
  token TEXT PRIMARY KEY, user_id TEXT NOT NULL, client_id TEXT NOT NULL,
  expires_at REAL NOT NULL, used INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS auth_codes (
  code TEXT PRIMARY KEY, user_id TEXT NOT NULL, client_id TEXT NOT NULL,
  expires_at REAL NOT NULL, used INTEGER NOT NULL DEFAULT 0
);
"""

# Ids look like Box's (long numbers); each kind counts from its own base.
_COUNTER_BASES = {"item": 100_000_000_000, "version": 200_000_000_000, "user": 30_000_000}


class DataDirBusy(RuntimeError):
    """Another server process already owns this data dir."""


class Database:
    """The metadata store of one data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(data_dir / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self._lock_fd)
            raise DataDirBusy(f"data dir {data_dir} is in use by another Box API server") from exc
        self._conn = sqlite3.connect(
            data_dir / "meta.sqlite3", isolation_level=None, check_same_thread=False, timeout=30
        )
        self._conn.row_factory = sqlite3.Row
        self._mutex = threading.RLock()
        with self._mutex:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(SCHEMA)

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; rolled back if the block raises."""
        with self._mutex:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        with self._mutex:
            return self._conn.execute(sql, params).fetchall()

    def query_one(self, sql: str, params: tuple = ()) -> sqlite3.Row | None:
        with self._mutex:
            return self._conn.execute(sql, params).fetchone()

    @staticmethod
    def next_id(conn: sqlite3.Connection, kind: str) -> int:
        """Allocate the next id of ``kind`` inside the caller's transaction."""
        row = conn.execute("SELECT value FROM counters WHERE name = ?", (kind,)).fetchone()
        value = (row["value"] if row else _COUNTER_BASES[kind]) + 1
        conn.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (kind, value),
        )
        return value

    def wipe_content(self) -> None:
        """Forget every item, version, session and issued token (admin reset)."""
        with self.tx() as conn:
            for table in ("items", "versions", "upload_sessions", "upload_parts", "refresh_tokens", "auth_codes"):
                conn.execute(f"DELETE FROM {table}")
            conn.execute("DELETE FROM tokens WHERE kind != 'developer'")

    def close(self) -> None:
        with self._mutex:
            self._conn.close()
        os.close(self._lock_fd)
