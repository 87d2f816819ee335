"""The recheck's resumable scan of every run's verify markers in the state bucket.

The daily recheck (:mod:`shared.verify.recheck`) needs the marker names of each run verified in
the last ``recheck_days``. GCS has no index by time, so they come from one listing of the state
bucket under ``export_prefix``, which holds every run the bucket's lifecycle rule keeps (90
days, with ``recheck_days`` daily markers a run): millions of objects at thousands of tables a
night, more pages than one invocation can list (docs/capacity.md, "The sweeps' listings"). So a
sweep lists one part of it (:mod:`shared.listing_parts`), ending at a run folder's boundary, and
saves where the next sweep starts (``recheck/{export_prefix}/cursor.json``). Which runs are
recent is read from the same listing (when their newest result marker was written), so the
recheck needs no listing of the exports bucket.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from shared import budgeted_pass, log
from shared.gcp import gcs
from shared.listing_parts import Cursor, list_part
from shared.verify import markers as verify_markers

logger = log.get_logger(__name__)

MarkerIndex = dict[str, dict[str, set[str]]]  # run folder prefix → destination → marker names
RESULT_PREFIX = f"{verify_markers.Kind.RESULT}-"


@dataclass(frozen=True)
class MarkerScan:
    """One sweep's part of the listing: the markers of the recent run folders it covered."""

    index: MarkerIndex
    start: str  # where this part began ("" = the beginning)
    next_start: str  # where the next part begins ("" = it reached the end: start over)
    # listed claim markers still busy (budgeted_pass.BUSY_METADATA) → when that claim was taken
    busy: dict[str, dt.datetime | None] = field(default_factory=dict)


def cursor(state_bucket: str, export_prefix: str) -> Cursor:
    return Cursor(state_bucket, f"recheck/{export_prefix.strip('/')}/cursor.json")


def scan(
    state_bucket: str,
    export_prefix: str,
    since: dt.datetime,
    *,
    start: str = "",
    stop_at: float | None = None,
    check_every: int = gcs.LIST_PAGE_SIZE,
) -> MarkerScan:
    """List markers from ``start`` until ``stop_at`` (:func:`shared.listing_parts.list_part`),
    keeping the names of the run folders with a result marker written at or after ``since``."""
    head = export_prefix.strip("/") + "/"
    sep = f"/{verify_markers.VERIFY_FOLDER}/"
    index: MarkerIndex = {}
    busy: dict[str, dt.datetime | None] = {}
    folder = _Folder("")

    def folder_of(name: str) -> str:
        at = name.find(sep)
        return name[: at + 1] if at >= 0 else name

    def add(info: gcs.ObjectInfo) -> None:
        nonlocal folder
        prefix = folder_of(info.name)
        if prefix != folder.prefix:
            folder.keep_if_recent(index, busy, since)
            folder = _Folder(prefix)
        if prefix != info.name:  # a marker: {run folder}_verify/{destination}/{name}
            folder.add(info, info.name[len(prefix) + len(sep) - 1 :])

    part = list_part(state_bucket, head, folder_of, add, start=start, stop_at=stop_at, check_every=check_every)
    folder.keep_if_recent(index, busy, since)
    return MarkerScan(index, part.start, part.next_start, busy)


@dataclass
class _Folder:
    """One run folder's markers as the listing hands them over (a folder's names are contiguous)."""

    prefix: str
    names: MarkerIndex = field(default_factory=dict)
    busy: dict[str, dt.datetime | None] = field(default_factory=dict)
    newest_result: dt.datetime | None = None

    def add(self, info: gcs.ObjectInfo, relative: str) -> None:
        destination, _, rest = relative.partition("/")
        if not rest:
            return
        self.names.setdefault(self.prefix, {}).setdefault(destination, set()).add(rest)
        if budgeted_pass.is_busy(info.metadata):
            self.busy[info.name] = info.time_created
        created = info.time_created
        if rest.startswith(RESULT_PREFIX) and created and (self.newest_result is None or created > self.newest_result):
            self.newest_result = created

    def keep_if_recent(self, index: MarkerIndex, busy: dict[str, dt.datetime | None], since: dt.datetime) -> None:
        if self.newest_result is not None and self.newest_result >= since:
            index.update(self.names)
            busy.update(self.busy)
