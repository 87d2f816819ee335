"""The run history: every published VerifyResult, kept as one small JSON object in GCS.

``gs://BUCKET/results/{YYYYMMDD}/{run_id}/{destination}/{finished_at}-{status}-{n}.json``
(``YYYYMMDD`` is the UTC day the result was reported; ``-`` stands for an unknown run id or
destination, e.g. a rejected message). Written by :func:`shared.reporting.results.report` next to the
``verify-results`` publication, read by ``offsite status``, ``offsite run --wait`` and the demo summary.

Why GCS and not a subscription on verify-results: the history must survive with nobody
listening, be readable by any operator without a standing consumer, and expire with the
bucket's lifecycle rule; listing one day's prefix is cheap. Objects outside ``exports/`` are
ignored by every function (the finalize events they cause are dropped at once).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from shared.errors import RejectedInput
from shared.gcp import gcs
from shared.messages import VerifyResult

RESULTS_PREFIX = "results/"
READ_WORKERS = 8
_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]")


def _segment(value: str | None) -> str:
    return _UNSAFE.sub("_", value) if value else "-"


def object_name(result: VerifyResult, now: dt.datetime) -> str:
    day = now.strftime("%Y%m%d")
    stamp = now.strftime("%Y%m%dT%H%M%S.%fZ")
    return (
        f"{RESULTS_PREFIX}{day}/{_segment(result.run_id)}/{_segment(result.destination)}/"
        f"{stamp}-{_segment(result.status)}-{uuid.uuid4().hex[:8]}.json"
    )


def record(bucket: str, result: VerifyResult, now: dt.datetime | None = None) -> str:
    """Append ``result`` to the history; returns the object name. Raises what GCS raises."""
    now = now or dt.datetime.now(dt.UTC)
    name = object_name(result, now)
    gcs.write(bucket, name, result.to_json(), "application/json", if_generation_match=0)
    return name


def days(since: dt.datetime, until: dt.datetime) -> list[str]:
    """``YYYYMMDD`` of every UTC day from ``since`` to ``until``, inclusive."""
    first, last = since.astimezone(dt.UTC).date(), until.astimezone(dt.UTC).date()
    return [(first + dt.timedelta(days=i)).strftime("%Y%m%d") for i in range((last - first).days + 1)]


def reported_at(name: str) -> dt.datetime | None:
    """When the result stored as ``name`` was reported (the stamp :func:`object_name` puts in it)."""
    stamp = name.rsplit("/", 1)[-1].split("-", 1)[0]
    try:
        return dt.datetime.strptime(stamp, "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return None  # not named by object_name: kept, as before


def _reported_before(name: str, since: dt.datetime) -> bool:
    when = reported_at(name)
    return when is not None and when < since


def read(
    bucket: str,
    since: dt.datetime,
    until: dt.datetime | None = None,
    *,
    run_ids: Iterable[str] | None = None,
) -> list[VerifyResult]:
    """Results reported from ``since`` on, optionally only of ``run_ids``, oldest first.

    The history is listed by UTC day; a result reported on ``since``'s day but before ``since``
    is dropped (``offsite status --since 30m`` shows 30 minutes, not the whole day)."""
    since, until = since.astimezone(dt.UTC), until or dt.datetime.now(dt.UTC)
    wanted = set(run_ids) if run_ids is not None else None
    names: list[str] = []
    for day in days(since, until):
        prefixes = (
            [f"{RESULTS_PREFIX}{day}/{_segment(r)}/" for r in sorted(wanted)] if wanted else [f"{RESULTS_PREFIX}{day}/"]
        )
        for prefix in prefixes:
            names.extend(
                info.name for info in gcs.list_prefix(bucket, prefix) if not _reported_before(info.name, since)
            )
    with ThreadPoolExecutor(max_workers=READ_WORKERS) as pool:  # one small GET per result
        bodies = list(pool.map(lambda name: gcs.read_bytes(bucket, name), names))
    found: list[tuple[str, VerifyResult]] = []
    for name, data in zip(names, bodies, strict=True):
        if data is None:
            continue
        try:
            found.append((name.rsplit("/", 1)[-1], VerifyResult.from_json(data)))
        except (RejectedInput, TypeError):
            continue  # not ours, or from a newer schema: skip rather than fail the listing
    found.sort(key=lambda item: (item[1].finished_at or "", item[0]))
    return [r for _, r in found]
