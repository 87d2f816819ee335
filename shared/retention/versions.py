"""Retention of a mirrored bucket's versions (``buckets[].retention``; docs/retention.md).

A bucket with ``retention`` keeps the copies the mirror removes in dated folders,
``{folder}/_offsite_versions/YYYY-MM-DD/`` (:mod:`shared.mirror.versions`). Per destination,
the dated folders are the units: ``daily: N`` keeps the newest N, ``monthly: M`` the newest
of each of the M newest months that have one (:func:`shared.retention.policy.kept`, as for run
folders). Every other one is pruned only while the bucket's latest reconcile at that
destination is ``in_sync`` (the analogue of "a newer run is in_sync": the live copies there are
proven complete); otherwise all are protected.

A prune writes ``pruning-{day}.json`` under ``mirror/{bucket}/{destination}/`` in the state
bucket, removes the folder (``Destination.delete_folder``), and publishes one ``pruned`` result
on verify-results (run ``mirror-{bucket}-v{YYYYMMDD}``, source ``{"mode": "bucket"}``, stage
``prune``),
claimed once with ``pruned-{day}.json``; a prune stopped between the two is reported by the next.
A folder the destination refuses to remove is ``failed`` and the others are still pruned
(:meth:`shared.retention.summary.PrunePass.remove`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from functools import partial

from shared import log
from shared.config import Config
from shared.config.buckets import BucketMirror
from shared.destinations.base import Destination
from shared.gcp import gcs
from shared.ids import DestinationId, Stage, Status
from shared.messages import VerifyResult
from shared.mirror import latest
from shared.mirror.routing import bucket_source, mirror_destinations, mirror_run_id, mirrored
from shared.mirror.versions import DAY_FORMAT
from shared.retention.catalog import Unit
from shared.retention.policy import Dated, kept, newest_first
from shared.retention.summary import Outcome, PrunePass
from shared.verify import markers as verify_markers
from shared.verify.flow import publish_once

logger = log.get_logger(__name__)
BucketTarget = tuple[BucketMirror, DestinationId]


def bucket_targets(config: Config, *, bucket: str | None = None, destination: str | None = None) -> list[BucketTarget]:
    """(bucket, destination) pairs with a retention policy; RejectedInput naming an unknown bucket."""
    if bucket is not None:
        mirrored(config, bucket, "--bucket")
    return [
        (mirror, dest)
        for mirror in config.buckets
        if mirror.retention is not None and bucket in (None, mirror.name)
        for dest in mirror_destinations(mirror, config)
        if destination in (None, dest)
    ]


def version_units(mirror: BucketMirror, destination: Destination) -> list[Unit]:
    """The dated folders under the bucket's ``_offsite_versions/`` at ``destination`` (with files)."""
    base = mirror.versions_folder
    units: dict[str, Unit] = {}
    for remote in destination.list(base, hashes=False):  # sizes suffice; SFTP would hash every file
        day, _, rest = remote.path[len(base) + 1 :].partition("/")
        date = _date(day)
        if date is None or not rest:
            continue
        unit = units.setdefault(day, Unit(mirror.name, f"{base}/{day}", date, None))
        unit.files += 1
        unit.bytes += remote.size
    return sorted(units.values(), key=lambda u: u.path)


def prune_bucket(run: PrunePass, mirror: BucketMirror, destination: Destination) -> None:
    """Apply ``mirror``'s retention to its versions at one destination, adding to ``run.summary``."""
    assert mirror.retention is not None
    config, summary, dry_run, now, message_id = run.config, run.summary, run.dry_run, run.now, run.message_id
    dest = str(destination.id)
    units = version_units(mirror, destination)
    if not dry_run:
        for day in _orphans(config, mirror, dest, {u.date for u in units}):
            _report(config, mirror, destination, day, "removed by an earlier prune, reported now", now, message_id)
    keep = kept([Dated(u.date, None, u.path, u) for u in units], mirror.retention)
    since = len(summary.outcomes)
    in_sync: bool | None = None  # asked once, only when something is beyond the policy
    policy = f"retention {mirror.retention.describe()}"
    for dated in newest_first([Dated(u.date, None, u.path, u) for u in units]):
        unit = dated.item

        def outcome(action: str, why: str, unit: Unit = unit) -> Outcome:
            return Outcome(mirror.name, dest, unit.path, unit.date.isoformat(), action, why, unit.files, unit.bytes)

        if unit.path in keep:
            summary.outcomes.append(outcome("keep", keep[unit.path]))
            continue
        if in_sync is None:
            in_sync = latest.in_sync(config, mirror, dest)
        if not in_sync:
            summary.outcomes.append(
                outcome("protect", f"protected: the bucket's latest reconcile at {dest} is not in_sync")
            )
            continue
        why = f"{policy}: the bucket's latest reconcile at {dest} is in_sync"
        if dry_run:
            summary.outcomes.append(outcome("prune", why))
            continue
        if run.out_of_time():
            summary.outcomes.append(outcome("deferred", "out of time; next prune"))
            continue
        run.remove(partial(_remove, run, mirror, destination, unit, why, outcome), partial(outcome, "failed"))
    run.raise_failures(since)


def _remove(
    run: PrunePass,
    mirror: BucketMirror,
    destination: Destination,
    unit: Unit,
    why: str,
    outcome: Callable[..., Outcome],
) -> Outcome:
    """Remove one dated folder: ``pruning-{day}.json``, the folder, its one ``pruned`` result."""
    dest = str(destination.id)
    marker = _marker(mirror, dest, "pruning", unit.date)
    verify_markers.claim(run.config.state_bucket_name, marker, {"reason": why})
    destination.delete_folder(unit.path)
    logger.info("versions folder pruned", path=unit.path, files=unit.files, bytes=unit.bytes, reason=why)
    removed = f"removed {destination.location(unit.path)} ({unit.files} files, {unit.bytes} bytes)"
    _report(run.config, mirror, destination, unit.date, f"{why}; {removed}", run.now, run.message_id)
    return outcome("pruned", why)


def versions_run_id(bucket: str, day: dt.date) -> str:
    """The run id a pruned versions folder is reported under: ``mirror-{bucket}-v{YYYYMMDD}``, so
    ``offsite status`` shows it on a row of its own (as a pruned run folder), not over the
    bucket's reconcile results."""
    return f"{mirror_run_id(bucket)[:53]}-v{day.strftime('%Y%m%d')}"


def _date(text: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(text, DAY_FORMAT).date() if len(text) == 10 else None
    except ValueError:
        return None


def _marker(mirror: BucketMirror, destination: str, kind: str, day: dt.date) -> str:
    return f"mirror/{mirror.name}/{destination}/{kind}-{day.strftime(DAY_FORMAT)}.json"


def _orphans(config: Config, mirror: BucketMirror, destination: str, present: set[dt.date]) -> Iterator[dt.date]:
    """Days marked ``pruning`` but not ``pruned`` whose folder is gone (a prune stopped between)."""
    prefix = f"mirror/{mirror.name}/{destination}/"
    names = {i.name[len(prefix) :] for i in gcs.list_prefix(config.state_bucket_name, prefix)}
    for name in sorted(names):
        if not name.startswith("pruning-"):
            continue
        day = _date(name[len("pruning-") : -len(".json")])
        if day is not None and day not in present and f"pruned-{day.strftime(DAY_FORMAT)}.json" not in names:
            yield day


def _report(
    config: Config,
    mirror: BucketMirror,
    destination: Destination,
    day: dt.date,
    reason: str,
    now: dt.datetime,
    message_id: str | None,
) -> None:
    """The one ``pruned`` result of the day's versions folder at this destination."""
    result = VerifyResult(
        status=Status.PRUNED,
        destination=destination.id,
        run_id=versions_run_id(mirror.name, day),
        source=bucket_source(mirror.name),
        reason=reason,
        stage=Stage.PRUNE,
        message_id=message_id,
        date=day.isoformat(),
        finished_at=now.isoformat(),
    )
    marker = _marker(mirror, str(destination.id), "pruned", day)
    publish_once(config.state_bucket_name, marker, result, config=config)
