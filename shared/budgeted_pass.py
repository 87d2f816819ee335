"""What the sweep's bounded daily passes share (verify's recheck, retention's daily prune).

Each pass works through (run folder or entry, destination) pairs, claims a marker per pair and
day, and stops starting new work when its time budget, counted from the sweep's start, is
spent; what it could not finish the next sweep picks up. Retention's claims are taken with
:func:`claim_pair`: one still busy longer than a verify invocation can live was left by one
stopped at its timeout (it could not give the claim back), and the next sweep takes it over.
A claim marker carries ``BUSY_METADATA`` while it is busy (the outcome's write replaces the
object without it), so a pass that judges from a listing, as the recheck does, sees a busy claim
and its age there, without reading each marker.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as gexc

from shared import log
from shared.gcp import gcs
from shared.topology import VERIFY_TIMEOUT_S

logger = log.get_logger(__name__)
# a claim still busy this long after it was taken: its invocation has ended (timeout)
ABANDONED_AFTER = dt.timedelta(seconds=VERIFY_TIMEOUT_S + 60)
BUSY_METADATA = {"offsite-claim": "busy"}  # on a claim marker until its outcome replaces it


def is_busy(metadata: dict[str, str]) -> bool:
    """A listed claim marker that is still busy (``BUSY_METADATA``)."""
    return all(metadata.get(k) == v for k, v in BUSY_METADATA.items())


def abandoned(busy_since: dt.datetime | None, now: dt.datetime) -> bool:
    """A claim busy since ``busy_since`` (its generation's creation) has outlived any invocation."""
    return busy_since is not None and now - busy_since >= ABANDONED_AFTER


@dataclass
class PassCounts:
    """What a pass left to the next sweep: pairs that failed, pairs deferred (out of budget)."""

    failures: int = 0
    deferred: int = 0


def stop_time(started: float | None, budget_s: float) -> float:
    """The ``time.monotonic()`` after which a pass starts nothing new: ``budget_s`` after ``started`` (default now)."""
    return (started if started is not None else time.monotonic()) + budget_s


def record_outcome(bucket: str, name: str, body: dict[str, object], what: str) -> None:
    """Write a pair's outcome into its day's claim marker ``name``; a failure only logs (the claim
    exists, so the pair is not redone today; its body is only informative)."""
    try:
        gcs.write(bucket, name, json.dumps(body, sort_keys=True).encode(), "application/json")
    except Exception as exc:  # noqa: BLE001 - see the docstring
        logger.warning(f"could not record the {what} outcome", error=str(exc))


def claim_pair(bucket: str, name: str, body: dict[str, Any], now: dt.datetime, since: str) -> bool:
    """Claim a pair's day marker ``name``: create it with ``body`` (its ``status`` the busy one,
    ``body[since]`` = ``now``), or take over one still in that status whose ``since`` is
    ABANDONED_AFTER before ``now``; of two sweeps taking it over one wins (generation match).
    False: done or failed today, or another sweep works on it."""
    data = json.dumps(body, sort_keys=True).encode()
    if gcs.write_if_absent(bucket, name, data, "application/json", metadata=BUSY_METADATA):
        return True
    found = gcs.read_with_generation(bucket, name)
    if found is None:
        return False  # given back just now: the next sweep claims it
    held = _json(found[0])
    started = _time(held.get(since))
    if held.get("status") != body.get("status") or not abandoned(started, now):
        return False
    try:
        gcs.write(bucket, name, data, "application/json", if_generation_match=found[1], metadata=BUSY_METADATA)
    except gexc.PreconditionFailed:
        return False  # another sweep took it over first
    logger.warning("took over a claim its invocation left unfinished", claim=name, since=held[since])
    return True


def _json(data: bytes) -> dict[str, Any]:
    try:
        body = json.loads(data)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _time(value: object) -> dt.datetime | None:
    try:
        when = dt.datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return when if when is None or when.tzinfo is not None else when.replace(tzinfo=dt.UTC)
