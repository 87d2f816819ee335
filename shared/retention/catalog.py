"""What is at a destination for one configured dataset or query export, and what offsite knows of it.

Three listings, one each, make the catalog (:func:`catalog`) — of one table of a dataset when
``series`` names it (the daily pass goes table by table, so no listing grows with the dataset):

- the destination, recursively under the entry's folder (``GCP/bigquery/{dataset}/`` on Box,
  ``{dataset}/`` on SFTP; ``GCP/exports/{export}/`` and ``{export}/``): the run folders that
  are there to prune — ``{table}/{YYYYMMDD}/{run_id}/`` of a dataset, ``{YYYYMMDD}/`` of a query
  export (same-day runs of a query export share their day's folder, so the day is the unit).
  Without ``sizes`` (the daily pass) only the folders' names are listed, down to the run
  folders and not into them: on Box, where a listing is a call per folder, that is about half
  the calls (a table's day folders, not its run folders too); a folder is measured only when it
  is pruned (:meth:`Unit.measure`), for its ``pruned`` report;
- the exports bucket under the entry's prefix: when each run started (``_run.json``), and which
  runs are recent enough to still be delivering;
- the state bucket under the same prefix: verify's markers per run folder and destination
  (``result-{k}.json``, ``incomplete-{k}.json``, ``failed-*.json``, ``recheck-mismatch-{k}.json``)
  and retention's own ``pruning.json`` / ``pruned.json``.

Destinations whose layout is ``flat`` keep every day's files in one folder and are not pruned.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field

from shared.config import Config, DatasetExport, QueryExport
from shared.destinations.base import Destination
from shared.gcp import gcs
from shared.layout import QUERY_SEGMENT, RunFolder, default_file_name, parse_object_name, remote_folder
from shared.message_fields import RUN_ID_RE
from shared.messages import Source
from shared.verify import markers as verify_markers
from shared.verify.runs import runs_in, scan_objects

Entry = DatasetExport | QueryExport
PRUNING, PRUNED = verify_markers.PRUNING, verify_markers.PRUNED


@dataclass
class KnownRun:
    """One run folder as the buckets know it, at one destination."""

    folder: RunFolder
    started: dt.datetime | None = None  # _run.json (or manifest) creation time, while the export is kept
    markers: dict[str, dt.datetime | None] = field(default_factory=dict)  # name → creation time

    @property
    def final(self) -> bool:
        """Verify has said its last word for the current round (in_sync, mismatch, incomplete, failed)."""
        state = verify_markers.state_of(self.markers)
        return state.reported or state.round in state.incompletes or any(n.startswith("failed-") for n in self.markers)

    @property
    def first_seen(self) -> dt.datetime | None:
        times = [t for t in self.markers.values() if t is not None]
        return self.started or (min(times) if times else None)


@dataclass
class Unit:
    """One folder at the destination that retention keeps or removes as a whole."""

    series: str  # the table (dataset entries) or the export name
    path: str  # relative to the destination root
    date: dt.date
    run_id: str | None  # None: a query export's day folder
    files: int = 0
    bytes: int = 0
    runs: list[KnownRun] = field(default_factory=list)
    sized: bool = True  # files and bytes were counted (False: a names-only catalog, until measure())

    def measure(self, destination: Destination) -> None:
        """Count the unit's files and bytes, if its catalog listed names only (one listing of it)."""
        if self.sized:
            return
        for remote in destination.list(self.path, hashes=False):
            self.files += 1
            self.bytes += remote.size
        self.sized = True

    @property
    def name(self) -> str:
        return self.path

    @property
    def started(self) -> dt.datetime | None:
        times = [t for run in self.runs if (t := run.first_seen) is not None]
        return max(times) if times else None


@dataclass
class Catalog:
    entry: Entry
    destination: Destination
    base: str  # the entry's folder at the destination
    units: list[Unit]
    known: list[KnownRun]  # every run folder the buckets know under the entry, at this destination

    def orphans(self) -> list[KnownRun]:
        """Run folders marked ``pruning`` but never reported ``pruned`` whose folder is gone from
        the destination (an earlier prune stopped between removing and reporting)."""
        attached = {id(run) for unit in self.units for run in unit.runs}
        return [r for r in self.known if PRUNING in r.markers and PRUNED not in r.markers and id(r) not in attached]

    def series(self) -> Iterator[tuple[str, list[Unit]]]:
        names = sorted({u.series for u in self.units})
        for name in names:
            yield name, [u for u in self.units if u.series == name]


def source_of(entry: Entry, config: Config, table: str | None = None) -> Source:
    if isinstance(entry, DatasetExport):
        return Source(mode="table", project=config.project, dataset=entry.name, table=table or "t")
    return Source(mode="query", project=config.project, export=entry.name)


def gcs_prefix(entry: Entry, config: Config) -> str:
    """The entry's prefix in the exports and state buckets: ``exports/sales/``, ``exports/_queries/e/``."""
    head = config.export_prefix.strip("/")
    return f"{head}/{entry.name}/" if isinstance(entry, DatasetExport) else f"{head}/{QUERY_SEGMENT}/{entry.name}/"


def remote_base(entry: Entry, config: Config, destination: Destination) -> str | None:
    """The entry's folder at ``destination`` (None for a flat layout, which is not pruned)."""
    if destination.abilities.layout == "flat":
        return None
    sample = RunFolder(config.export_prefix, source_of(entry, config), dt.date(2000, 1, 1), "r")
    template = entry.file_name if isinstance(entry, QueryExport) else default_file_name("t", entry.format)
    path = remote_folder(destination.abilities.layout, sample, template).path
    depth = 3 if isinstance(entry, DatasetExport) else 1  # {table}/{day}/{run} or {day}
    return path.rsplit("/", depth)[0]


def _day(text: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(text, "%Y%m%d").date() if len(text) == 8 else None
    except ValueError:
        return None


def catalog(
    entry: Entry, config: Config, destination: Destination, series: str | None = None, *, sizes: bool = True
) -> Catalog | None:
    """The entry's run folders at ``destination`` with what the buckets know of them (module
    docstring); None for a flat layout. ``series`` (a table of a dataset entry): that table's
    folder only, and only its prefix in the buckets (a query export is one series already).
    ``sizes``: count each folder's files and bytes (a recursive listing); else folder names only."""
    base = remote_base(entry, config, destination)
    if base is None:
        return None
    dataset = isinstance(entry, DatasetExport)
    series = series if dataset else None
    found = _sized_units if sizes else _named_units
    units = found(entry, destination, base, series)
    runs = _known_runs(entry, config, destination, series)
    for folder_key, run in runs.items():
        unit = units.get(folder_key if dataset else folder_key[1:2])
        if unit is not None:
            unit.runs.append(run)
    return Catalog(entry, destination, base, sorted(units.values(), key=lambda u: u.path), list(runs.values()))


UnitKey = tuple[str, ...]  # (table, day, run_id) of a dataset, (day,) of a query export


def _sized_units(entry: Entry, destination: Destination, base: str, series: str | None) -> dict[UnitKey, Unit]:
    """The run folders that hold files, from one recursive listing, with their files and bytes."""
    dataset = isinstance(entry, DatasetExport)
    units: dict[UnitKey, Unit] = {}
    scope = f"{base}/{series}" if series else base
    for remote in destination.list(scope, hashes=False):  # sizes suffice; SFTP would hash every file
        parts = remote.path[len(base) + 1 :].split("/")
        key = tuple(parts[:3]) if dataset else tuple(parts[:1])
        if len(parts) <= len(key) or (dataset and not RUN_ID_RE.match(key[2])):
            continue
        date = _day(key[1] if dataset else key[0])
        if date is None:
            continue
        unit = units.get(key)
        if unit is None:
            unit = Unit(key[0] if dataset else entry.name, f"{base}/{'/'.join(key)}", date, key[2] if dataset else None)
            units[key] = unit
        unit.files += 1
        unit.bytes += remote.size
    return units


def _named_units(entry: Entry, destination: Destination, base: str, series: str | None) -> dict[UnitKey, Unit]:
    """The run folders by name only: a listing of the table's (or export's) folder and one of each
    day folder of a table; no run folder is listed into."""
    if not isinstance(entry, DatasetExport):
        days = ((day, _day(day)) for day in destination.list_folders(base))
        return {(d,): Unit(entry.name, f"{base}/{d}", date, None, sized=False) for d, date in days if date is not None}
    units: dict[UnitKey, Unit] = {}
    for table in [series] if series else destination.list_folders(base):
        for day in destination.list_folders(f"{base}/{table}"):
            date = _day(day)
            if date is None:
                continue
            for run_id in destination.list_folders(f"{base}/{table}/{day}"):
                if RUN_ID_RE.match(run_id):
                    path = f"{base}/{table}/{day}/{run_id}"
                    units[(table, day, run_id)] = Unit(table, path, date, run_id, sized=False)
    return units


def _known_runs(
    entry: Entry, config: Config, destination: Destination, series: str | None
) -> dict[tuple[str, ...], KnownRun]:
    """(table, day, run_id) or (export, day, run_id) → what the exports and state buckets know
    (of table ``series`` only, when given: ``exports/sales/orders/``, not ``orders_eu/``)."""
    prefix = gcs_prefix(entry, config) + (f"{series}/" if series else "")
    known: dict[tuple[str, ...], KnownRun] = {}

    def run_for(folder: RunFolder) -> KnownRun:
        series = folder.source.table if folder.source.mode == "table" else folder.source.export
        key = (str(series), folder.date.strftime("%Y%m%d"), folder.run_id)
        return known.setdefault(key, KnownRun(folder))

    refs = scan_objects(
        config.bucket, prefix, lambda objs: runs_in(objs, config.bucket, config.export_prefix, config.project)
    )
    for ref in refs:
        run_for(ref.folder).started = ref.started
    sep = f"/{verify_markers.VERIFY_FOLDER}/{destination.id}/"
    for info in gcs.list_prefix(config.state_bucket_name, prefix):
        at = info.name.find(sep)
        if at < 0:
            continue
        folder = _folder_of(info.name[: at + 1], config)
        if folder is not None:
            run_for(folder).markers[info.name[at + len(sep) :]] = info.time_created
    return known


def _folder_of(prefix: str, config: Config) -> RunFolder | None:
    parsed = parse_object_name(prefix + "x", config.export_prefix, config.project)
    return parsed[0] if parsed is not None else None
