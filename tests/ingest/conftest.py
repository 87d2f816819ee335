"""Fixtures for the ingest tests: real SQLite files and the local BigQuery of the bare stack.

``ingest`` (function): an :class:`IngestKit` with a fresh SQLite app database (``users``:
merge by id with an ``updated_at`` cursor and a hashed ``api_key``; ``messages``: append by
autoincrement id) and a fresh BigQuery dataset, both unique to the test.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devstack.state import StackInfo
from shared.config.ingest import IngestSettings
from shared.ingest.engine import IngestRun, TableOutcome, sync

HASH_KEY = "test-hmac-key"
APP_SCHEMA = """
PRAGMA journal_mode = WAL;
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    api_key TEXT,
    score REAL,
    created_at TEXT,
    updated_at TEXT NOT NULL
);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL,
    body TEXT,
    sent_at TEXT
);
"""


@dataclass
class IngestKit:
    stack: StackInfo
    db: Path
    dataset: str
    client: Any

    def sqlite(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 30000")
        return conn

    def settings(self, **overrides: Any) -> IngestSettings:
        base: dict[str, Any] = {
            "sqlite_path": str(self.db),
            "dataset": self.dataset,
            "hash_key": HASH_KEY,
            "tables": {"users": {"hashed_columns": ["api_key"]}, "messages": {"mode": "append"}},
        }
        base.update(overrides)
        return IngestSettings.model_validate(base)

    def run(self, settings: IngestSettings | None = None, **kw: Any) -> dict[str, TableOutcome]:
        faults = kw.pop("faults", frozenset())
        job = IngestRun(settings or self.settings(), self.client, self.stack.project, faults=faults)
        return {o.table: o for o in sync(job, **kw)}

    def rows(self, table: str, order: str = "id") -> list[dict[str, Any]]:
        sql = f"SELECT * FROM `{self.stack.project}.{self.dataset}.{table}` ORDER BY {order}"
        return [dict(r) for r in self.client.query(sql).result()]

    def tables(self) -> list[str]:
        return sorted(t.table_id for t in self.client.list_tables(f"{self.stack.project}.{self.dataset}"))


@pytest.fixture
def ingest(bare_stack_env: StackInfo, tmp_path: Path) -> Iterator[IngestKit]:
    from shared.gcp import clients

    db = tmp_path / "app.db"
    conn = sqlite3.connect(db)
    conn.executescript(APP_SCHEMA)
    conn.close()
    kit = IngestKit(bare_stack_env, db, f"ingest_{uuid.uuid4().hex[:10]}", clients.bigquery_client())
    yield kit
    kit.client.delete_dataset(f"{bare_stack_env.project}.{kit.dataset}", delete_contents=True, not_found_ok=True)
