"""A listing too long for one invocation, read in parts across scheduled sweeps.

GCS has no index by time, so the verify sweep finds overdue runs by listing the exports bucket
and the recheck finds its candidates by listing the state bucket's markers: every run the
lifecycle rules keep, more pages than one invocation can read at thousands of tables
(docs/capacity.md, "The sweeps' listings"). A part lists from where the last one stopped until
its time is spent, ends where the next *unit* (a run folder) begins so that no unit is half-read,
and saves where the next part starts in a small cursor object; a part that reaches the end goes
on from the beginning up to where it started, so a listing shorter than one part's time is read
whole every time. GCS lists in name order and takes a ``startOffset``, which is all this needs.

Two sweeps at once may both save the cursor; the later write wins, and the worst it does is list
a range twice or leave one to the next pass.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from shared import log
from shared.errors import PermanentError
from shared.gcp import gcs

logger = log.get_logger(__name__)


@dataclass(frozen=True)
class Part:
    """Where one part of a listing began and where the next begins ("": it reached the end, so the
    next part starts over from the beginning)."""

    start: str
    next_start: str

    @property
    def whole(self) -> bool:
        """This part covered the whole listing (it began at the start and reached the end)."""
        return not self.start and not self.next_start


@dataclass(frozen=True)
class Cursor:
    """Where the next part of a listing starts, kept in the state bucket as ``name``."""

    bucket: str
    name: str

    def read(self) -> str:
        """Where to start; "" (the beginning) without a cursor, or with one that does not parse
        (as retention's own cursor: a sweep must not fail on it every time)."""
        try:
            saved = gcs.read_json(self.bucket, self.name)
        except PermanentError as exc:
            logger.warning("ignored an unreadable listing cursor", cursor=self.name, error=str(exc))
            saved = None
        start = saved.get("next_start", "") if isinstance(saved, dict) else ""
        return start if isinstance(start, str) else ""

    def save(self, next_start: str, now: dt.datetime) -> None:
        body = {"next_start": next_start, "saved_at": now.isoformat()}
        gcs.write(self.bucket, self.name, json.dumps(body).encode(), "application/json")


def list_next_part(
    cursor: Cursor,
    bucket: str,
    prefix: str,
    unit_of: Callable[[str], str],
    add: Callable[[gcs.ObjectInfo], None],
    *,
    stop_at: float | None,
    now: dt.datetime,
    check_every: int = gcs.LIST_PAGE_SIZE,
) -> Part:
    """:func:`list_part` from where ``cursor`` says, then save where the next part starts. A save
    that fails is logged: the next part lists this one again, and nothing is passed over."""
    start = cursor.read()
    part = list_part(bucket, prefix, unit_of, add, start=start, stop_at=stop_at, check_every=check_every)
    if part.next_start != start:
        try:
            cursor.save(part.next_start, now)
        except Exception as exc:  # noqa: BLE001 - see above
            logger.warning("could not save where the next listing starts", cursor=cursor.name, error=str(exc))
    if not part.whole:
        logger.info("listed a part", prefix=prefix, listed_from=part.start, next_start=part.next_start)
    return part


def list_part(
    bucket: str,
    prefix: str,
    unit_of: Callable[[str], str],
    add: Callable[[gcs.ObjectInfo], None],
    *,
    start: str = "",
    stop_at: float | None = None,
    check_every: int = gcs.LIST_PAGE_SIZE,
) -> Part:
    """Hand ``add`` every object under ``prefix`` from ``start`` on until ``stop_at``
    (``time.monotonic()``; None: no limit), then, when that reached the end before ``stop_at``,
    from the beginning up to ``start``. The clock is read every ``check_every`` objects (a page), so a
    listing shorter than that is always whole; once past ``stop_at`` the part ends where the next
    unit (``unit_of(name)``) begins."""
    next_start = _fold(bucket, prefix, unit_of, add, start, "", stop_at, check_every)
    if start and not next_start and (stop_at is None or time.monotonic() <= stop_at):
        next_start = _fold(bucket, prefix, unit_of, add, "", start, stop_at, check_every)
    return Part(start, next_start)


def _fold(
    bucket: str,
    prefix: str,
    unit_of: Callable[[str], str],
    add: Callable[[gcs.ObjectInfo], None],
    start: str,
    until: str,
    stop_at: float | None,
    check_every: int,
) -> str:
    """``add`` the objects from ``start`` to ``until`` (or the end); where the next part begins,
    "" when this one reached its end."""

    def consume(infos: Iterator[gcs.ObjectInfo]) -> str:
        stopping, current = False, None
        for n, info in enumerate(infos, 1):
            if until and info.name >= until:
                break
            unit = unit_of(info.name)
            if stopping and unit != current:
                return unit  # a boundary: every name of that unit is >= it
            current = unit
            if stop_at is not None and n % check_every == 0 and time.monotonic() > stop_at:
                stopping = True
            add(info)
        return ""

    return gcs.fold_prefix(bucket, prefix, consume, start_offset=start)
