"""Fault injection and the request log (admin API; not part of Drive's API).

A fault targets an operation (``files.list``, ``files.get``, ``files.create``, ``files.update``,
``files.delete``, ``files.download``, ``upload.start``, ``upload.chunk``, ``upload.status``,
``token``, ``drives.create``, or ``any``) and fires on the next ``count`` matching calls after
letting ``skip`` through. Actions, as Drive answers them:

- ``rate_limit``: 403 ``userRateLimitExceeded`` (domain usageLimits);
- ``too_many``: 429 ``rateLimitExceeded`` with ``Retry-After: retry_after``;
- ``error``: ``status`` (default 500) ``backendError``;
- ``drop``: close the connection without an answer, after storing the request's body (an
  upload chunk is stored, its answer is lost: the client must ask where the upload stands).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from .store import DriveApiError

ACTIONS = ("rate_limit", "too_many", "error", "drop")


@dataclass
class Fault:
    operation: str
    action: str
    count: int = 1
    skip: int = 0
    status: int = 500
    retry_after: float = 0.0

    def error(self) -> DriveApiError:
        if self.action == "rate_limit":
            return DriveApiError(403, "userRateLimitExceeded", "User Rate Limit Exceeded.", domain="usageLimits")
        if self.action == "too_many":
            return DriveApiError(
                429, "rateLimitExceeded", "Rate Limit Exceeded", domain="usageLimits", retry_after=self.retry_after
            )
        return DriveApiError(self.status, "backendError", "Backend Error", domain="global")


class FaultBook:
    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self.counts: Counter[str] = Counter()

    def add(self, spec: dict[str, Any]) -> Fault:
        if spec.get("action") not in ACTIONS:
            raise ValueError(f"action {spec.get('action')!r} is not one of {', '.join(ACTIONS)}")
        fault = Fault(**{k: v for k, v in spec.items() if k in Fault.__dataclass_fields__})
        self.faults.append(fault)
        return fault

    def take(self, operation: str) -> Fault | None:
        """Count the call; the fault that fires on it, if any."""
        self.counts[operation] += 1
        for fault in self.faults:
            if fault.operation not in (operation, "any"):
                continue
            if fault.skip > 0:
                fault.skip -= 1
                continue
            fault.count -= 1
            if fault.count <= 0:
                self.faults.remove(fault)
            return fault
        return None

    def describe(self) -> list[dict[str, Any]]:
        return [asdict(f) for f in self.faults]
