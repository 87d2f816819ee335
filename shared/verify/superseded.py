"""Files a superseded run of the same day left in a shared destination folder.

Query exports share one destination folder per day (``{export}/{YYYYMMDD}/``, Box's
``GCP/exports/{export}/{YYYYMMDD}/``) and flat SFTP partners one folder for everything; a run
owns the names matching its file pattern there (``Product_20250108-*.csv.gz``). A same-day rerun
writes the same shard names, so when it produces fewer shards the earlier run's higher-numbered
shards stay behind: verify reported them as ``extra`` for ever, and self-heal, which only
re-delivers, could never clear them.

Verify therefore removes them, before the comparison is judged, when all of this holds:

- no newer run of the run's source and day (by the creation time of ``_run.json``) holds the
  folder: a newer run counts when its manifest routes it to this destination, or when it has no
  manifest yet but started less than ``verify.deadline_minutes`` ago (still exporting, maybe
  delivering). A newer run that never finished, or that goes elsewhere, does not count. An
  older run, verified or rechecked later, never deletes anything;
- the file is an ``extra`` in the run's shared folder (it matches the run's file pattern and is
  not in its manifest), ``.partial`` leftovers included — but never a ``.partial`` of one of
  the run's own files (``in_flight``: its upload in progress);
- an older run of the same source and day exported a file of that name (its GCS run folder
  lists it).

The older runs' manifest copies there go too (logged). A file no offsite run of that day
exported (a partner's own file) is never deleted and stays an ``extra``. What was removed is
returned, and the published result says so. ``offsite verify`` deletes nothing: it names what
verify would remove (``Comparison.would_remove``). The daily recheck skips a run that a newer
run of its day holds the folder for, by the same rule (``replaced_at``): its files there are
the newer run's now, which is not a mismatch.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from shared import log
from shared.config import Config
from shared.delivery.routing import load_run
from shared.destinations import factory
from shared.destinations.base import Destination
from shared.errors import RejectedInput
from shared.layout import RemoteFolder, RunFolder, is_data_file, parse_object_name, remote_folder, remote_manifest_name
from shared.verify.engine import Comparison, partial_stem
from shared.verify.runs import RunRef, list_objects, load_manifest, runs_in

logger = log.get_logger(__name__)


@dataclass(frozen=True)
class Superseded:
    """What verify removes for a run at one destination (names relative to its folder)."""

    files: tuple[str, ...] = ()  # extras an older run of the day exported
    manifest_copies: tuple[str, ...] = ()  # the older runs' manifest copies found there

    @property
    def names(self) -> tuple[str, ...]:
        return self.files + self.manifest_copies


def replaced_at(config: Config, run: RunFolder, destination: str, file_name: str, *, now: dt.datetime) -> bool:
    """``run``'s folder at ``destination`` is shared and a newer run of the same day holds it."""
    with factory.opened(destination, config) as dest:
        folder = remote_folder(dest.abilities.layout, run, file_name)
    return not folder.exclusive and _superseded(config, run, destination, now) is None


def without_superseded(
    config: Config,
    run: RunFolder,
    destination: Destination,
    folder: RemoteFolder,
    comparison: Comparison,
    *,
    remove: bool,
    now: dt.datetime,
) -> Comparison:
    """``comparison`` after removing (``remove``) what a superseded run left, or naming it in
    ``would_remove`` (then nothing changes at the destination and the extras stay extras)."""
    suffix = destination.abilities.partial_suffix
    # a .partial of one of the run's own files is its upload in progress: never a leftover
    candidates = [n for n in comparison.extra if n not in comparison.in_flight]
    found = _find(config, run, destination, folder, candidates, (suffix,) if suffix else (), now)
    if not found.names:
        return comparison
    if not remove:
        return dataclasses.replace(comparison, would_remove=found.names)
    _remove(destination, folder, found)
    return dataclasses.replace(
        comparison,
        extra=tuple(n for n in comparison.extra if n not in found.files),
        partial=tuple(n for n in comparison.partial if n not in found.files),
        removed=found.files,
    )


def _find(
    config: Config,
    run: RunFolder,
    destination: Destination,
    folder: RemoteFolder,
    extra: Iterable[str],
    partial_suffixes: tuple[str, ...],
    now: dt.datetime,
) -> Superseded:
    """``run``'s extras at ``destination`` that an older run of the same day exported, and the
    older runs' manifest copies there. Exclusive folders hold one run: nothing."""
    if folder.exclusive:
        return Superseded()
    found = _superseded(config, run, str(destination.id), now)
    if not found:
        return Superseded()
    older, older_runs = found
    files = tuple(sorted(n for n in extra if partial_stem(n, partial_suffixes) in older))
    # The older runs' manifest copies describe files that are gone or replaced: a restore of
    # them would fail its SHA-1 check, so they go too.
    copies = tuple(
        name
        for name in (remote_manifest_name(folder, run_id) for run_id in older_runs)
        if destination.stat(_path(folder, name)) is not None
    )
    return Superseded(files, copies)


def _remove(destination: Destination, folder: RemoteFolder, found: Superseded) -> None:
    for name in found.names:
        destination.delete(_path(folder, name))
    if found.files:
        logger.warning("removed files of a superseded run of the same day", files=list(found.files), folder=folder.path)
    if found.manifest_copies:
        logger.warning(
            "removed the manifest copies of superseded runs of the same day",
            files=list(found.manifest_copies),
            folder=folder.path,
        )


def _path(folder: RemoteFolder, name: str) -> str:
    return f"{folder.path}/{name}" if folder.path else name


def _superseded(
    config: Config, folder: RunFolder, destination: str, now: dt.datetime
) -> tuple[set[str], list[str]] | None:
    """(data file names, run ids) of the older runs of ``folder``'s source and day; None when a
    newer run holds the folder at ``destination`` (then nothing may be removed on its behalf)."""
    day_prefix = folder.prefix[: -len(folder.run_id) - 1]
    objects = list_objects(config.bucket, day_prefix)
    runs = runs_in(objects, config.bucket, folder.export_prefix, folder.source.project)
    mine = next((i for i, r in enumerate(runs) if r.folder.run_id == folder.run_id), None)
    if mine is None or any(_holds(config, r, destination, now) for r in runs[mine + 1 :]):
        return None
    older = {r.folder.prefix for r in runs[:mine]}
    names: set[str] = set()
    for obj in objects:
        parsed = parse_object_name(obj.name, folder.export_prefix, folder.source.project)
        if parsed is not None and parsed[0].prefix in older and is_data_file(parsed[1]):
            names.add(parsed[1])
    return names, [r.folder.run_id for r in runs[:mine]]


def _holds(config: Config, newer: RunRef, destination: str, now: dt.datetime) -> bool:
    """A newer run holds the shared folder at ``destination``: its manifest routes it there, or,
    without a manifest, it is still exporting (within ``verify.deadline_minutes``) to there.
    A malformed control file is no run's claim."""
    try:
        if newer.has_manifest:
            manifest = load_manifest(config.bucket, newer.folder)
            return manifest is not None and destination in manifest.destinations
        exporting = dt.timedelta(minutes=config.verify.deadline_minutes)
        if newer.started is None or now - newer.started >= exporting:
            return False
        routing = load_run(config.bucket, newer.folder)
        return routing is not None and destination in routing.destinations
    except RejectedInput:
        return False
