"""Fault injection and the request log (admin API; not part of Drive's API).

A fault targets an operation (``files.list``, ``files.get``, ``files.create``, ``files.update``,
``files.delete``, ``files.download``, ``upload.start``, ``upload.chunk``, ``upload.status``,
``token``, ``drives.create``, or ``any``) and fires on the next ``count`` matching calls after
letting ``skip`` through. Actions, as Drive answers them:

- ``rate_limit``: 403 ``userRateLimitExceeded`` (domain usageLimits);
- ``too_many``: 429 ``rateLimitExceeded`` with ``Retry-After: retry_after``;
- ``error``: ``status`` (default 500) ``backendError``;
- ``drop``: close the connection without an answer, after storing the request's body (an
  upload chunk is stored, its answer is lost: the client must ask where the upload stands);
- ``keep_part`` (``upload.chunk``): store only the chunk's first ``keep_bytes`` and answer 308
  with the ``Range`` that far, as Drive may: the client must send the rest;
- ``expire`` (``upload.chunk``): the session expires (Drive keeps one a week) just before this
  request: it is forgotten, so this and every later request to it answer 404.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from devstack import faults
from devstack.faults import FaultRule

from .store import DriveApiError

ACTIONS = ("rate_limit", "too_many", "error", "drop", "keep_part", "expire")


@dataclass
class Fault(FaultRule):
    status: int = 500
    retry_after: float = 0.0
    keep_bytes: int = 256 * 1024

    def error(self) -> DriveApiError:
        if self.action == "rate_limit":
            return DriveApiError(403, "userRateLimitExceeded", "User Rate Limit Exceeded.", domain="usageLimits")
        if self.action == "too_many":
            return DriveApiError(
                429, "rateLimitExceeded", "Rate Limit Exceeded", domain="usageLimits", retry_after=self.retry_after
            )
        return DriveApiError(self.status, "backendError", "Backend Error", domain="global")


class FaultBook(faults.FaultBook[Fault]):
    """The active faults (devstack.faults) and how many calls each operation got."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def add_spec(self, spec: dict[str, Any]) -> Fault:
        if spec.get("action") not in ACTIONS:
            raise ValueError(f"action {spec.get('action')!r} is not one of {', '.join(ACTIONS)}")
        return self.add(Fault(**{k: v for k, v in spec.items() if k in Fault.__dataclass_fields__}))

    def fire(self, operation: str) -> Fault | None:
        """Count the call; the fault that fires on it, if any."""
        self.counts[operation] += 1
        fired = self.take(operation)
        return fired[0] if fired else None

    def describe(self) -> list[dict[str, Any]]:
        return [asdict(f) for f in self.faults]
