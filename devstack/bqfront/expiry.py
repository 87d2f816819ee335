"""BigQuery's table ``expirationTime``, which bqemulator drops.

A table created or patched with ``expirationTime`` (milliseconds since the epoch) is remembered
here and ``tables.get`` shows it again. Once it has passed, the table is gone, as BigQuery
deletes an expired table: the next ``tables.get`` deletes it from bqemulator and answers 404
``notFound`` (BigQuery's own deletion happens some time after the expiry; a crashed run's
staging table must not outlive it). A patch with ``expirationTime: null`` keeps the table.
The times live in the front's memory: a restarted front has forgotten them.
"""

from __future__ import annotations

import threading
import time
from typing import Any

Key = tuple[str, str, str]


class TableExpiry:
    """(project, dataset, table) → its expiration time in ms since the epoch."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._times: dict[Key, int] = {}

    def remember(self, project: str, dataset: str, table: dict[str, Any], answered: dict[str, Any]) -> None:
        """After bqemulator created, patched or replaced the table (``table`` is the request body)."""
        if "expirationTime" not in table:
            return
        ref = answered.get("tableReference") or table.get("tableReference") or {}
        key = (project, dataset, str(ref.get("tableId", "")))
        value = table["expirationTime"]
        with self._lock:
            if value is None:
                self._times.pop(key, None)
            else:
                self._times[key] = int(value)

    def forget(self, project: str, dataset: str, table: str) -> None:
        with self._lock:
            self._times.pop((project, dataset, table), None)

    def shown(self, project: str, dataset: str, table: str, answered: dict[str, Any]) -> dict[str, Any]:
        """A tables.get answer with the expiration time BigQuery would show."""
        with self._lock:
            at = self._times.get((project, dataset, table))
        return answered if at is None else {**answered, "expirationTime": str(at)}

    def expired(self, project: str, dataset: str, table: str) -> bool:
        with self._lock:
            at = self._times.get((project, dataset, table))
        return at is not None and at <= time.time() * 1000
