"""The users behind tokens: the developer, each enterprise's service account, app users."""

from __future__ import annotations

import sqlite3
from typing import Any

from .db import Database
from .render import user_mini
from .timefmt import now_iso

DEVELOPER_ID = "20000001"


class UserStore:
    """Users are created on demand: Box would know them, the local server just records them."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._cache: dict[str, sqlite3.Row] = {}
        self._ensure(DEVELOPER_ID, "developer", "Devstack Developer", "developer@devstack.local", None)

    def _ensure(self, user_id: str, kind: str, name: str, login: str, enterprise_id: str | None) -> sqlite3.Row:
        with self._db.tx() as conn:
            conn.execute(
                "INSERT INTO users (id, kind, name, login, enterprise_id, created_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO NOTHING",
                (user_id, kind, name, login, enterprise_id, now_iso()),
            )
        row = self._db.query_one("SELECT * FROM users WHERE id = ?", (user_id,))
        assert row is not None
        self._cache[user_id] = row
        return row

    def developer(self) -> sqlite3.Row:
        return self.get(DEVELOPER_ID) or self._ensure(
            DEVELOPER_ID, "developer", "Devstack Developer", "developer@devstack.local", None
        )

    def service_account(self, enterprise_id: str) -> sqlite3.Row:
        """The enterprise's service account (what JWT/CCG enterprise tokens act as)."""
        row = self._db.query_one(
            "SELECT * FROM users WHERE kind = 'service_account' AND enterprise_id = ?", (enterprise_id,)
        )
        if row is not None:
            return row
        with self._db.tx() as conn:
            user_id = str(Database.next_id(conn, "user"))
        login = f"AutomationUser_{user_id}_devstack@boxdevedition.com"
        return self._ensure(user_id, "service_account", "Devstack Service Account", login, enterprise_id)

    def app_user(self, user_id: str, enterprise_id: str) -> sqlite3.Row:
        """A managed or app user named by a token request's subject id."""
        return self.get(user_id) or self._ensure(
            user_id, "app_user", f"User {user_id}", f"user{user_id}@devstack.local", enterprise_id
        )

    def get(self, user_id: str | None) -> sqlite3.Row | None:
        if user_id is None:
            return None
        if user_id not in self._cache:
            row = self._db.query_one("SELECT * FROM users WHERE id = ?", (user_id,))
            if row is None:
                return None
            self._cache[user_id] = row
        return self._cache[user_id]

    def mini(self, user_id: str | None) -> dict[str, Any]:
        return user_mini(self.get(user_id))

    def forget_cache(self) -> None:
        self._cache.clear()
