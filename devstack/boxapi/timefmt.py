"""Timestamps in Box's format: ISO 8601 with a numeric UTC offset, whole seconds."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from .errors import bad_request


def iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(int(epoch_s), UTC).isoformat()


def now_iso() -> str:
    return iso(time.time())


def parse_client_time(value: object, field: str) -> str | None:
    """A date-time sent by a client (``content_modified_at``), normalized; 400 if unparsable."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_request(f"{field} must be an RFC 3339 date-time string, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise bad_request(f"{field} must be an RFC 3339 date-time, got {value!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).replace(microsecond=0).isoformat()
