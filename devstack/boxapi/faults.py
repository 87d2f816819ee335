"""Fault injection and the request log behind the admin API (not part of Box's API).

A fault targets an operation name (``upload_part``, ``commit``, ``create_folder``, ...,
or ``any``) and fires on the next ``count`` matching calls, after letting ``skip`` of
them through. Actions:

- ``rate_limit``: 429 ``rate_limit_exceeded`` with ``Retry-After``;
- ``error``: a Box error with ``status`` (default 500) and ``code``;
- ``delay``: wait ``seconds`` before handling the call normally;
- ``drop``: read ``after_bytes`` of the request body, then reset the connection;
- ``accepted``: 202 with ``Retry-After`` and no body (what Box's commit says while busy);
- ``lose_answer``: handle the call normally (an upload is stored), then reset the connection
  instead of answering (a proxy or link failing after Box did the work).
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from typing import Any

from devstack import faults
from devstack.faults import FaultRule

from .errors import BoxError

ACTIONS = ("rate_limit", "error", "delay", "drop", "accepted", "lose_answer")

OPERATIONS = (
    "oauth_token",
    "oauth_revoke",
    "get_user_me",
    "create_folder",
    "get_folder",
    "get_folder_items",
    "update_folder",
    "delete_folder",
    "get_file",
    "delete_file",
    "get_file_versions",
    "download_file",
    "download_content",
    "preflight_upload",
    "preflight_upload_version",
    "upload_file",
    "upload_file_version",
    "create_upload_session",
    "create_upload_session_version",
    "get_upload_session",
    "upload_part",
    "list_parts",
    "commit",
    "abort_upload_session",
)

_DEFAULT_CODES = {429: "rate_limit_exceeded", 500: "internal_server_error", 502: "bad_gateway", 503: "unavailable"}


@dataclass
class Fault(FaultRule):
    status: int | None = None
    code: str | None = None
    message: str | None = None
    retry_after: float | None = None
    seconds: float = 0.0
    after_bytes: int = 65536
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    fired: int = 0

    @classmethod
    def from_json(cls, data: Any) -> Fault:
        if not isinstance(data, dict):
            raise BoxError(400, "bad_request", f"a fault must be a JSON object, got {data!r}")
        operation, action = data.get("operation", "any"), data.get("action")
        if operation != "any" and operation not in OPERATIONS:
            raise BoxError(400, "bad_request", f"unknown operation {operation!r}; known: any, {', '.join(OPERATIONS)}")
        if action not in ACTIONS:
            raise BoxError(400, "bad_request", f"unknown action {action!r}; known: {', '.join(ACTIONS)}")
        allowed = {"operation", "action", "count", "skip", "status", "code", "message", "retry_after", "seconds"}
        allowed.add("after_bytes")
        unknown = set(data) - allowed
        if unknown:
            raise BoxError(400, "bad_request", f"unknown fault fields {sorted(unknown)}")
        fault = cls(**data)
        if fault.count < 1 or fault.skip < 0:
            raise BoxError(400, "bad_request", "count must be >= 1 and skip >= 0")
        if fault.action == "error" and fault.status is not None and not 400 <= fault.status <= 599:
            raise BoxError(400, "bad_request", f"status must be 4xx or 5xx, got {fault.status}")
        return fault

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def retry_after_header(self, default: float) -> dict[str, str]:
        value = default if self.retry_after is None else self.retry_after
        text = str(int(value)) if float(value).is_integer() else str(value)
        return {"Retry-After": text}

    def error(self) -> BoxError:
        """The Box error this fault answers with (rate_limit and error actions)."""
        if self.action == "rate_limit":
            return BoxError(
                429,
                self.code or "rate_limit_exceeded",
                self.message or "Request rate limit exceeded, please try again later",
                headers=self.retry_after_header(1),
            )
        status = self.status or 500
        headers = self.retry_after_header(0) if self.retry_after is not None else None
        return BoxError(
            status, self.code or _DEFAULT_CODES.get(status, "internal_server_error"), self.message, headers=headers
        )


class FaultBook(faults.FaultBook[Fault]):
    """The active faults (devstack.faults), each counting how often it fired."""

    def remove(self, fault_id: str) -> bool:
        before = len(self.faults)
        self.faults = [f for f in self.faults if f.id != fault_id]
        return len(self.faults) != before

    def take(self, operation: str) -> list[Fault]:
        fired = super().take(operation)
        for fault in fired:
            fault.fired += 1
        return fired


@dataclass
class LoggedRequest:
    seq: int
    at: float
    operation: str
    method: str
    path: str
    status: int | None = None
    faults: list[str] = field(default_factory=list)


class RequestLog:
    """Every Box API call (not admin, not health), newest last, bounded."""

    def __init__(self, keep: int = 20_000) -> None:
        self._entries: deque[LoggedRequest] = deque(maxlen=keep)
        self._counts: Counter[str] = Counter()
        self._seq = itertools.count(1)

    def start(self, operation: str, method: str, path: str) -> LoggedRequest:
        entry = LoggedRequest(seq=next(self._seq), at=time.time(), operation=operation, method=method, path=path)
        self._entries.append(entry)
        self._counts[operation] += 1
        return entry

    def clear(self) -> None:
        self._entries.clear()
        self._counts.clear()

    def to_json(self, operation: str | None = None) -> dict[str, Any]:
        entries = [e for e in self._entries if operation is None or e.operation == operation]
        statuses: dict[str, Counter[str]] = {}
        for entry in self._entries:
            statuses.setdefault(entry.operation, Counter())[str(entry.status)] += 1
        counts = dict(self._counts) if operation is None else {operation: self._counts.get(operation, 0)}
        return {
            "counts": counts,
            "statuses": {op: dict(c) for op, c in statuses.items() if operation in (None, op)},
            "requests": [asdict(e) for e in entries],
        }
