"""Planned job failures (a test control, not BigQuery's API): a transiently failed export.

``POST /_bqfront/failures {"job_id": J, "reason": "backendError", "message": M, "shard_bytes": S}``:
the front's export job ``J`` (extract or EXPORT DATA; ids are never reused, so it happens once)
writes its files — in shards of ``S`` bytes when given, since BigQuery's split of a retry need
not be the failed attempt's — and then ends DONE with ``reason``: the files it wrote stay, as
they may when a BigQuery job fails part-way.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PlannedFailure:
    reason: str
    message: str
    shard_bytes: int | None = None


class PlannedFailures:
    """Job id → the failure it ends with; taken (removed) by the job it names."""

    def __init__(self) -> None:
        self._planned: dict[str, PlannedFailure] = {}
        self._lock = threading.Lock()

    def plan(self, body: dict[str, Any]) -> str:
        """Plan the failure ``body`` describes; its job id. ValueError naming a bad field."""
        job_id, reason = body.get("job_id"), body.get("reason")
        shard_bytes = body.get("shard_bytes")
        if not isinstance(job_id, str) or not job_id:
            raise ValueError(f"job_id: {job_id!r} is not a job id")
        if not isinstance(reason, str) or not reason:
            raise ValueError(f"reason: {reason!r} is not a BigQuery error reason (e.g. backendError)")
        if shard_bytes is not None and (not isinstance(shard_bytes, int) or shard_bytes < 1):
            raise ValueError(f"shard_bytes: {shard_bytes!r} is not a positive number of bytes")
        message = str(body.get("message") or f"planned {reason} (local BigQuery front)")
        with self._lock:
            self._planned[job_id] = PlannedFailure(reason, message, shard_bytes)
        return job_id

    def take(self, job_id: str) -> PlannedFailure | None:
        with self._lock:
            return self._planned.pop(job_id, None)

    def planned(self) -> list[str]:
        with self._lock:
            return sorted(self._planned)
