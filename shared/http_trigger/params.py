"""What the HTTP trigger's endpoints read from a request: a path segment, the body's object (with
what the path names), the ``?wait=`` seconds (bounded by the function's timeout) and the run id
an ``Idempotency-Key`` stands for."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping
from typing import Any

from shared.http_trigger.messages import BadRequest
from shared.message_fields import parse_json_object

FUNCTION = "http_trigger"
WAIT_MARGIN_S = 30  # answer this long before the function's timeout cuts the request off
POLL_S = 2.0
MAX_DAYS = 90
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]{1,1024}\Z")


def max_wait_s() -> int:
    """The longest ``?wait=`` this function can honour: its timeout less a margin."""
    from shared import topology

    return max(0, topology.function(FUNCTION).timeout_s - WAIT_MARGIN_S)


def segment(parts: list[str], what: str, index: int = 1) -> str:
    """The path's segment ``index`` (``/sync/<dataset>``: 1), checked as a name."""
    value = parts[index]
    if not _SEGMENT.match(value):
        raise BadRequest(f"{what}: {value[:80]!r} in the path is not a valid name (letters, digits, '_' and '-')")
    return value


def body_object(body: bytes, kind: str, path: tuple[str, str] | None = None) -> dict[str, Any]:
    """The request body's JSON object, named ``kind`` in errors. ``path``: (field, value) the URL
    path gives (``/sync/<dataset>``); the body may then be empty, and may repeat that value for
    the field but not name another. Without it the body is the request (an empty one a 400)."""
    if path is None:
        return parse_json_object(body, kind)
    key, value = path
    obj = parse_json_object(body, kind) if body.strip() else {}
    given = obj.get(key)
    if given is not None and given != value:
        raise BadRequest(f"{kind}.{key}: {given!r} in the body is not {value!r} of the path")
    obj[key] = value
    return obj


def wait_param(query: Mapping[str, str]) -> float | None:
    """``?wait=SECONDS``: None when absent; 0 to :func:`max_wait_s`."""
    raw = query.get("wait")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        raise BadRequest(f"wait: {raw[:40]!r} is not a number of seconds") from None
    if not 0 <= seconds <= max_wait_s():
        raise BadRequest(f"wait: {raw!r} must be between 0 and {max_wait_s()} seconds (the function's timeout)")
    return seconds


def run_id_for(key: str | None) -> str | None:
    """The run id of a POST sent with ``Idempotency-Key: key``: the same for every retry of it
    on one UTC day (a client resending after a lost answer starts no second run: the stages take
    a run id they have seen as a redelivery), another the next day."""
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not key.isascii() or not key.isprintable():
        raise BadRequest(f"Idempotency-Key: {key[:40]!r} must be 1 to 255 printable ASCII characters")
    day = dt.datetime.now(dt.UTC).date().isoformat()
    return "k" + hashlib.sha256(f"{day}|{key}".encode()).hexdigest()[:12]


def days_param(query: Mapping[str, str]) -> int:
    """``?days=N``: how far back to read results, 1 to :data:`MAX_DAYS` (default 7)."""
    raw = query.get("days", "7")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 3) or not 1 <= int(raw) <= MAX_DAYS:
        raise BadRequest(f"days: {raw[:40]!r} must be a whole number of days between 1 and {MAX_DAYS}")
    return int(raw)
