"""The recheck's resumable scan of every run's verify markers in the state bucket.

The daily recheck (:mod:`shared.verify.recheck`) needs each recent run's marker names. GCS has
no index by time, so they come from one listing of the state bucket under ``export_prefix``,
which holds every run the bucket's lifecycle rule keeps (90 days, with ``recheck_days`` daily
markers a run): millions of objects at thousands of tables a night, more pages than one
invocation can list (docs/capacity.md, "The sweeps' listings"). So a sweep lists only until its
share of time is spent, stopping at a run folder's boundary, and saves where the next sweep
starts (``recheck/{export_prefix}/cursor.json``); the listing that reaches the end starts the
next one from the beginning. Small buckets are listed whole every sweep.

Two sweeps at once may both write the cursor; the later write wins, and the worst it does is
list a range twice or leave one to the next pass (each recheck is claimed once a day anyway).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from shared import budgeted_pass, log
from shared.gcp import gcs
from shared.verify import markers as verify_markers

logger = log.get_logger(__name__)

MarkerIndex = dict[str, dict[str, set[str]]]  # run folder prefix → destination → marker names


@dataclass(frozen=True)
class MarkerScan:
    """One sweep's part of the listing: the markers of the wanted run folders it covered."""

    index: MarkerIndex
    start: str  # where this part began ("" = the beginning)
    next_start: str  # where the next part begins ("" = it reached the end: start over)
    # listed claim markers still busy (budgeted_pass.BUSY_METADATA) → when that claim was taken
    busy: dict[str, dt.datetime | None] = field(default_factory=dict)


def cursor_name(export_prefix: str) -> str:
    return f"recheck/{export_prefix.strip('/')}/cursor.json"


def read_cursor(state_bucket: str, export_prefix: str) -> str:
    saved = gcs.read_json(state_bucket, cursor_name(export_prefix)) or {}
    start = saved.get("next_start", "")
    return start if isinstance(start, str) else ""


def save_cursor(state_bucket: str, export_prefix: str, next_start: str, now: dt.datetime) -> None:
    body = {"next_start": next_start, "saved_at": now.isoformat()}
    gcs.write(state_bucket, cursor_name(export_prefix), json.dumps(body).encode(), "application/json")


def scan(
    state_bucket: str,
    export_prefix: str,
    wanted: set[str],
    *,
    start: str = "",
    stop_at: float | None = None,
    check_every: int = gcs.LIST_PAGE_SIZE,
) -> MarkerScan:
    """List markers from ``start`` until ``stop_at`` (``time.monotonic()``; None: to the end),
    keeping only the names of the run folders in ``wanted``; a listing that reaches the end in
    time goes on from the beginning up to ``start``. The clock is read every ``check_every``
    objects (a page), so a listing shorter than that is always whole; once past ``stop_at`` the
    listing ends where the next run folder begins, so no folder is half-read."""
    index: MarkerIndex = {}
    busy: dict[str, dt.datetime | None] = {}
    next_start = _scan_part(state_bucket, export_prefix, wanted, (index, busy), start, "", stop_at, check_every)
    if start and not next_start:
        next_start = _scan_part(state_bucket, export_prefix, wanted, (index, busy), "", start, stop_at, check_every)
    return MarkerScan(index, start, next_start, busy)


def _scan_part(
    state_bucket: str,
    export_prefix: str,
    wanted: set[str],
    into: tuple[MarkerIndex, dict[str, dt.datetime | None]],
    start: str,
    until: str,
    stop_at: float | None,
    check_every: int,
) -> str:
    """Add the markers from ``start`` to ``until`` (or the end) to ``into`` (the index, and the
    busy claims among them); where the next part begins, "" when this one reached its end."""
    head = export_prefix.strip("/") + "/"
    sep = f"/{verify_markers.VERIFY_FOLDER}/"
    index, busy = into

    def add_to_index(infos: Iterator[gcs.ObjectInfo]) -> str:
        found: MarkerIndex = {}
        stopping, current = False, None
        for n, info in enumerate(infos, 1):
            if until and info.name >= until:
                break
            at = info.name.find(sep)
            folder = info.name[: at + 1] if at >= 0 else info.name
            if stopping and folder != current:
                index.update(found)
                return folder  # a boundary: every name of it is >= folder
            current = folder
            if stop_at is not None and n % check_every == 0 and time.monotonic() > stop_at:
                stopping = True
            if at < 0 or folder not in wanted:
                continue
            destination, _, rest = info.name[at + len(sep) :].partition("/")
            if rest:
                found.setdefault(folder, {}).setdefault(destination, set()).add(rest)
                if budgeted_pass.is_busy(info.metadata):
                    busy[info.name] = info.time_created
        index.update(found)
        return ""

    return gcs.fold_prefix(state_bucket, head, add_to_index, start_offset=start)
