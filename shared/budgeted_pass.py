"""What the sweep's bounded daily passes share (verify's recheck, retention's daily prune).

Each pass works through (run folder or entry, destination) pairs, claims a marker per pair and
day, and stops starting new work when its time budget, counted from the sweep's start, is
spent; what it could not finish the next sweep picks up.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from shared import log
from shared.gcp import gcs

logger = log.get_logger(__name__)


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
