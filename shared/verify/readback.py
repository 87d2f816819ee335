"""A verification that reads files back, spread over as many invocations as it needs.

A destination that reports no SHA-1 (an SFTP server without ``hashing``) is verified by
reading each file back. A run of many GB may take longer than one invocation has (verify's
540 s). So within an invocation the comparison stops ``SAVE_S`` before the invocation's retries
must end (:func:`shared.retry.invocation_ends`), keeps the SHA-1s it has read back in
``{prefix}_verify/{destination}/readback.json`` in the state bucket, and raises a
TransientError: Pub/Sub redelivers the event, and the next invocation reads only the files not
read yet (a file whose size or mtime changed is read again). The record is deleted once a comparison
completes, and one older than ``KEEP`` is ignored, so a later verification (the daily recheck)
reads every file again. ``verify.rows`` reads every file back at any destination to count its
records (:mod:`shared.verify.rows`): those counts are kept in the same record, the same way.

A comparison that had a whole invocation and read back nothing (one file larger than an
invocation can read, or a folder too large to list) cannot finish by retrying: it is a
:class:`NoTimeLeft` (permanent: reported ``failed``) that says how to fix it.

A mirror reconcile (:mod:`shared.mirror.reconcile`) reads back the same way, within its own 400 s,
keeping its record in ``mirror/{bucket}/{destination}/readback.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

from shared import log, retry
from shared.destinations.base import Destination
from shared.errors import TransientError
from shared.gcp import gcs
from shared.verify import markers
from shared.verify.engine import NoTimeLeft, ReadBack

T = TypeVar("T")
logger = log.get_logger(__name__)
NAME = "readback.json"
SAVE_S = 30.0  # of the invocation's time, left to save what was read and to report
WHOLE_S = 240.0  # a comparison that started with this much time left had a whole invocation
KEEP = dt.timedelta(hours=2)  # a record older than this belongs to an abandoned verification
ROWS_ADVICE = (
    ", and count its records with `offsite verify RUN_ID` (one process, no time limit) or turn verify.rows off"
)


def record_name(prefix: str, destination: str) -> str:
    """Where a run's verification at ``destination`` keeps what it read back."""
    return markers.folder(prefix, destination) + NAME


def invocation_deadline(destination: Destination, *, counts_records: bool = False) -> float | None:
    """Until when a verification may read back from ``destination`` in this invocation
    (``time.monotonic()``); None outside an invocation (``offsite verify``), or when nothing is
    read back: a destination that lists SHA-1s, unless ``counts_records`` (``verify.rows`` reads
    every file)."""
    ends = retry.invocation_ends()
    if ends is None or not _reads_back(destination, counts_records):
        return None
    return ends - SAVE_S


def _reads_back(destination: Destination, counts_records: bool) -> bool:
    return counts_records or "sha1" not in destination.abilities.hashes


def _advice(destination: Destination, counts_records: bool) -> str:
    """How to verify a file too large to read back within one invocation."""
    if "sha1" not in destination.abilities.hashes:
        return (
            f"give {destination.name} server hashing (hashing: sha1sum or check-file, docs/sftp.md) so that"
            " verify need not download" + (ROWS_ADVICE if counts_records else "")
        )
    return ROWS_ADVICE.removeprefix(", and ")


def bounded(
    state_bucket: str,
    name: str,
    destination: Destination,
    compare: Callable[[float | None, ReadBack | None], T],
    *,
    deadline: float | None,
    stop_without_progress: bool = False,
    counts_records: bool = False,
) -> T:
    """``compare(deadline, read_back)``, with what earlier invocations read back kept in the state
    bucket's ``name`` (module docstring); ``counts_records``: ``compare`` also counts the records
    of every file (``verify.rows``), so it reads back even from a destination that lists SHA-1s.
    A comparison that read back nothing fails for good (NoTimeLeft) when it started with
    ``WHOLE_S`` before ``deadline``, or with ``stop_without_progress`` whatever it started with
    (a retry has no more time than it had)."""
    if deadline is None:
        return compare(None, None)
    if not _reads_back(destination, counts_records):
        return compare(deadline, None)
    read_back, recorded = load(state_bucket, name)
    started_with = deadline - time.monotonic()
    try:
        comparison = compare(deadline, read_back)
    except NoTimeLeft as exc:
        read_now = read_back.read
        if read_now == 0 and (stop_without_progress or started_with >= WHOLE_S):
            raise NoTimeLeft(
                f"{exc}; one invocation ({started_with:.0f} s) read back nothing: "
                + _advice(destination, counts_records)
            ) from None
        if read_now:
            save(state_bucket, name, read_back)
        raise TransientError(
            f"{exc}; {read_back.kept} file reading(s) so far are kept ({read_now} in this invocation),"
            " and the redelivery goes on from there"
        ) from None
    if recorded:  # before the result is published: the next verification must read every file
        gcs.delete(state_bucket, name)
    return comparison


def load(bucket: str, name: str) -> tuple[ReadBack, bool]:
    """The SHA-1s an earlier invocation of this verification read back (none when the record is
    older than KEEP or unreadable: it only saves reading files again), and whether a record was there."""
    found: Any = gcs.read_json(bucket, name)
    if found is None:
        return ReadBack(), False
    try:
        at = dt.datetime.fromisoformat(str(found["at"]))
        read_back = ReadBack.from_json(found)
    except (ValueError, TypeError, KeyError, AttributeError):
        logger.warning("ignoring an unreadable read-back record", record=name)
        return ReadBack(), True
    if at.tzinfo is None or dt.datetime.now(dt.UTC) - at > KEEP:
        return ReadBack(), True
    return read_back, True


def save(bucket: str, name: str, read_back: ReadBack) -> None:
    body = {"at": dt.datetime.now(dt.UTC).isoformat(), **read_back.to_json()}
    gcs.write(bucket, name, json.dumps(body).encode(), "application/json")
