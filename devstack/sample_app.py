"""A sample SQLite app database for the ingest (``offsite dev seed``): seed 001's shapes, small.

- ``users``: merge by ``id``, ``updated_at`` cursor, ``api_key`` hashed by the local config;
- ``chat_history``: insert-only (append by autoincrement ``id``);
- ``user_cohorts``: a junction table with a composite primary key and no cursor (read whole);
- some users updated after their insert (new ``updated_at``, same id), and one "late commit":
  a row whose ``updated_at`` is older than rows committed before it (what ``lag_s`` is for).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA = """
PRAGMA journal_mode = WAL;
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL,
    name TEXT,
    api_key TEXT,
    plan TEXT,
    credits NUMERIC,
    is_admin BOOLEAN,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chat_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL,
    role TEXT NOT NULL,
    content TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS user_cohorts (
    user_id INTEGER NOT NULL,
    cohort_id INTEGER NOT NULL,
    role TEXT,
    PRIMARY KEY (user_id, cohort_id)
);
"""
USERS = 40
MESSAGES = 400


def create(path: Path) -> dict[str, int]:
    """Create (or top up) the sample database at ``path``; returns row counts per table."""
    conn = sqlite3.connect(path)
    try:
        conn.executescript(SCHEMA)
        with conn:
            conn.executemany(
                "INSERT OR IGNORE INTO users (id, email, name, api_key, plan, credits, is_admin, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        i,
                        f"user{i}@example.com",
                        f"User {i}",
                        f"sk-live-{i:04d}-sample",
                        "free",
                        f"{i * 1.25:.2f}",
                        int(i == 1),
                        f"2025-01-01 00:{i:02d}:00",
                        f"2025-01-01 00:{i:02d}:00",
                    )
                    for i in range(1, USERS + 1)
                ],
            )
            # updates of existing rows: same id, newer updated_at (an id cursor would miss them)
            conn.execute("UPDATE users SET plan = 'pro', updated_at = '2025-01-02 09:00:00' WHERE id % 10 = 0")
            # a late commit: written now, stamped earlier than rows already committed
            conn.execute("UPDATE users SET name = 'User 7 (renamed)', updated_at = '2025-01-01 23:59:00' WHERE id = 7")
            if conn.execute("SELECT COUNT(*) FROM chat_history").fetchone()[0] == 0:
                conn.executemany(
                    "INSERT INTO chat_history (user_id, role, content, created_at) VALUES (?, ?, ?, ?)",
                    [
                        (
                            i % USERS + 1,
                            "user" if i % 2 else "assistant",
                            f"message {i}",
                            f"2025-01-03 10:{i % 60:02d}:00",
                        )
                        for i in range(MESSAGES)
                    ],
                )
            conn.executemany(
                "INSERT OR IGNORE INTO user_cohorts (user_id, cohort_id, role) VALUES (?, ?, ?)",
                [(u, c, "learner") for u in range(1, USERS + 1) for c in (1, 2) if (u + c) % 3],
            )
        tables = ("users", "chat_history", "user_cohorts")
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}
    finally:
        conn.close()


def change(path: Path) -> dict[str, int]:
    """What the app does between two syncs: a few users updated (same id), new chat messages."""
    conn = sqlite3.connect(path)
    try:
        with conn:
            stamp = conn.execute("SELECT MAX(updated_at) FROM users").fetchone()[0]
            updated = conn.execute(
                "UPDATE users SET plan = 'team', updated_at = datetime(?, '+1 hour') WHERE id IN (3, 4, 5)", (stamp,)
            ).rowcount
            conn.executemany(
                "INSERT INTO chat_history (user_id, role, content, created_at) VALUES (?, 'user', ?, datetime('now'))",
                [(i, f"new message {i}") for i in range(1, 6)],
            )
        return {"users updated": updated, "chat_history added": 5}
    finally:
        conn.close()
