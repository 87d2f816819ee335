"""Files a superseded run of the same day left in a shared destination folder.

Query exports share one destination folder per day (``{export}/{YYYYMMDD}/``, Box's
``GCP/exports/{export}/{YYYYMMDD}/``) and flat SFTP partners one folder for everything; a run
owns the names matching its file pattern there (``Product_20250108-*.csv.gz``). A same-day rerun
writes the same shard names, so when it produces fewer shards the earlier run's higher-numbered
shards stay behind: verify reported them as ``extra`` for ever, and self-heal, which only
re-delivers, could never clear them.

Verify therefore removes them, before the comparison is judged, when all of this holds:

- the run being verified is the newest run of its source and day in GCS (by the creation time
  of ``_run.json``); an older run, verified or rechecked later, never deletes anything;
- the file is an ``extra`` in the run's shared folder (it matches the run's file pattern and is
  not in its manifest), ``.partial`` leftovers included;
- an older run of the same source and day exported a file of that name (its GCS run folder
  lists it).

A file no offsite run of that day exported (a partner's own file) is never deleted and stays an
``extra``. What was removed is returned, and the published result says so. The daily recheck
skips a run that a newer run of its day has replaced in a shared folder (``replaced_at``): its
files there are the newer run's now, which is not a mismatch.
"""

from __future__ import annotations

from collections.abc import Iterable

from shared import log
from shared.config import Config
from shared.destinations import factory
from shared.destinations.base import Destination
from shared.layout import RemoteFolder, RunFolder, is_data_file, parse_object_name, remote_folder, remote_manifest_name
from shared.verify.engine import partial_stem
from shared.verify.runs import list_objects, runs_in

logger = log.get_logger(__name__)


def superseded_files(bucket: str, folder: RunFolder) -> set[str] | None:
    """File names exported by older runs of ``folder``'s source and day; None when ``folder`` is
    not the newest run of that day (then nothing may be removed on its behalf)."""
    found = _superseded(bucket, folder)
    return None if found is None else found[0]


def _superseded(bucket: str, folder: RunFolder) -> tuple[set[str], list[str]] | None:
    """(data file names, run ids) of the older runs of ``folder``'s source and day."""
    day_prefix = folder.prefix[: -len(folder.run_id) - 1]
    objects = list_objects(bucket, day_prefix)
    runs = runs_in(objects, bucket, folder.export_prefix, folder.source.project)
    if not runs or runs[-1].folder.run_id != folder.run_id:
        return None
    older = {r.folder.prefix for r in runs[:-1]}
    names: set[str] = set()
    for obj in objects:
        parsed = parse_object_name(obj.name, folder.export_prefix, folder.source.project)
        if parsed is not None and parsed[0].prefix in older and is_data_file(parsed[1]):
            names.add(parsed[1])
    return names, [r.folder.run_id for r in runs[:-1]]


def replaced_at(config: Config, run: RunFolder, destination: str, file_name: str) -> bool:
    """``run``'s folder at ``destination`` is shared and a newer run of the same day exists."""
    with factory.opened(destination, config) as dest:
        folder = remote_folder(dest.abilities.layout, run, file_name)
    return not folder.exclusive and superseded_files(config.bucket, run) is None


def remove_superseded(
    bucket: str,
    run: RunFolder,
    destination: Destination,
    folder: RemoteFolder,
    extra: Iterable[str],
    partial_suffixes: tuple[str, ...],
) -> tuple[str, ...]:
    """Delete ``run``'s extras at ``destination`` that an older run of the same day exported;
    returns the names deleted (relative to ``folder``). Exclusive folders hold one run: nothing."""
    extra = tuple(extra)
    if folder.exclusive:
        return ()
    found = _superseded(bucket, run)
    if not found:
        return ()
    older, older_runs = found
    stale = sorted(n for n in extra if partial_stem(n, partial_suffixes) in older)
    for name in stale:
        destination.delete(f"{folder.path}/{name}" if folder.path else name)
    # The older runs' manifest copies describe files that are gone or replaced: a restore of
    # them would fail its SHA-1 check, so they go too (a missing one is fine).
    for run_id in older_runs:
        name = remote_manifest_name(folder, run_id)
        destination.delete(f"{folder.path}/{name}" if folder.path else name)
    if stale:
        logger.warning("removed files of a superseded run of the same day", files=stale, folder=folder.path)
    return tuple(stale)
