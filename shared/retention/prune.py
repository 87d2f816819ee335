"""Applying retention at destinations: ``offsite prune`` and the verify sweep's daily pass.

For every configured dataset or query export with ``retention`` and each of its destinations
(the entry's ``destinations``, else every configured one), :mod:`shared.retention.catalog`
finds the run folders there and :mod:`shared.retention.policy` decides; a run folder to prune is
removed with ``Destination.delete_folder`` (then its day folder, when that is left empty):

1. ``pruning.json`` is written under each of its run folders' ``_verify/{destination}/`` in the
   state bucket first, so the daily recheck does not report the removed files as a mismatch;
2. the folder is removed at the destination;
3. one ``pruned`` result per run folder is published on verify-results (and kept in the run
   history, so ``offsite status`` shows it), claimed once with ``pruned.json``. A prune that
   stopped between 2 and 3 is reported by the next one (its ``pruning.json`` has no ``pruned.json``
   and the folder is gone).

A run folder the destination refuses to remove (a PermanentError, e.g. a file in it that is
not ours to delete) is that folder's outcome, ``failed``; the target's other folders, and
the other targets, are still pruned, then a PermanentError names it. A dry run lists the same decisions and writes,
removes and publishes nothing. Work is bounded:
no new removal (and no new table of a dataset) starts after ``stop_at`` (``time.monotonic()``);
a dataset is pruned one table at a time, each with its own catalog, and :func:`prune_target`
returns the table to resume at, which the daily pass keeps as its cursor
(:mod:`shared.retention.scheduled`); what is left of a table is found again by the next prune,
since its catalog is read afresh each time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import partial

from shared import log
from shared.config import Config, DatasetExport, Retention
from shared.config.types import TABLE_RE
from shared.destinations.base import Destination
from shared.destinations.factory import opened
from shared.errors import ConfigError, PermanentError
from shared.gcp import gcs
from shared.ids import DestinationId, Stage, Status
from shared.layout import RunFolder
from shared.messages import VerifyResult
from shared.retention.catalog import (
    PRUNED,
    PRUNING,
    Catalog,
    Entry,
    KnownRun,
    Unit,
    catalog,
    remote_base,
    source_of,
)
from shared.retention.policy import EPOCH, Dated, Decision, decide
from shared.retention.summary import Outcome, PrunePass, PruneSummary
from shared.retention.versions import bucket_targets, prune_bucket
from shared.verify import markers as verify_markers
from shared.verify.flow import publish_once

logger = log.get_logger(__name__)
SETTLE_EXTRA = dt.timedelta(days=1)  # beyond verify.deadline_minutes, a run with no final result is not pending


Target = tuple[Entry, DestinationId]


def targets(
    config: Config, *, dataset: str | None = None, export: str | None = None, destination: str | None = None
) -> list[Target]:
    """(entry, destination) pairs with a retention policy; ConfigError naming an unknown filter value."""
    if dataset is not None and config.dataset(dataset) is None:
        known = ", ".join(d.name for d in config.datasets) or "none configured"
        raise ConfigError(f"--dataset: {dataset!r} is not a configured dataset (configured: {known})")
    if export is not None and config.export(export) is None:
        known = ", ".join(e.name for e in config.exports) or "none configured"
        raise ConfigError(f"--export: {export!r} is not a configured export (configured: {known})")
    if destination is not None and destination not in config.destination_names():
        known = ", ".join(config.destination_names()) or "none configured"
        raise ConfigError(f"--destination: {destination!r} is not a configured destination (configured: {known})")
    entries: list[Entry] = []
    if export is None:
        entries += [d for d in config.datasets if dataset in (None, d.name)]
    if dataset is None:
        entries += [e for e in config.exports if export in (None, e.name)]
    pairs = []
    for entry in entries:
        if entry.retention is None:
            continue
        for dest in entry.destinations or config.destination_names():
            if destination in (None, dest):
                pairs.append((entry, dest))
    return pairs


def prune(
    config: Config,
    *,
    dry_run: bool = False,
    dataset: str | None = None,
    export: str | None = None,
    destination: str | None = None,
    bucket: str | None = None,
    now: dt.datetime | None = None,
    stop_at: float | None = None,
    message_id: str | None = None,
) -> PruneSummary:
    """Apply every matching retention policy (module docstring); mirrored buckets' versions
    too (:mod:`shared.retention.versions`) unless ``dataset`` or ``export`` narrows it."""
    summary = PruneSummary(dry_run)
    if bucket is not None and (dataset is not None or export is not None):
        raise ConfigError("--bucket: cannot be combined with --dataset or --export (a bucket has no run folders)")
    pairs = targets(config, dataset=dataset, export=export, destination=destination)
    mirrors = bucket_targets(config, bucket=bucket, destination=destination)
    run = PrunePass(config, summary, now or dt.datetime.now(dt.UTC), stop_at, message_id)
    jobs: list[tuple[Callable[[Destination], object], DestinationId]] = []
    if bucket is None:
        jobs += [(partial(prune_target, run, entry), dest) for entry, dest in pairs]
    if dataset is None and export is None:
        jobs += [(partial(prune_bucket, run, mirror), dest) for mirror, dest in mirrors]
    refused: list[PermanentError] = []
    for job, dest in jobs:
        try:
            with opened(dest, config) as handle:
                job(handle)
        except PermanentError as exc:  # e.g. a folder refused there: the other pairs are still pruned
            logger.error("could not prune", destination=str(dest), error=str(exc))
            refused.append(exc)
    if refused:
        raise refused[0]
    return summary


def prune_target(run: PrunePass, entry: Entry, destination: Destination, *, start_at: str | None = None) -> str | None:
    """Apply ``entry``'s retention at one destination, adding what happened to ``run.summary``.

    A dataset goes table by table: its tables are the folders in its folder at the destination
    (sorted; valid table names only), from ``start_at`` (inclusive) on, each with its own catalog,
    decisions and removals. Out of time before a table: that table is returned (one ``deferred``
    outcome), for the next pass to resume at; also a table cut short inside is returned itself.
    None: every table was done (a query export: one catalog, its series is the export)."""
    assert entry.retention is not None
    with log.bind(entry=entry.name, destination=str(destination.id), dry_run=run.dry_run):
        base = remote_base(entry, run.config, destination)
        if base is None:
            why = f"{entry.name} at {destination.id}: not pruned (flat layout: every day's files share one folder)"
            run.summary.skipped.append(why)
            logger.info("retention skipped", reason=why)
            return None
        since = len(run.summary.outcomes)
        left = None
        if isinstance(entry, DatasetExport):
            left = _prune_tables(run, entry, destination, base, start_at)
        else:
            _prune_series(run, entry, destination, None)
        if left is None:  # a round cut short reports its failed folders as outcomes (and logs)
            run.raise_failures(since)
        return left


def _prune_tables(
    run: PrunePass, entry: DatasetExport, destination: Destination, base: str, start_at: str | None
) -> str | None:
    """The dataset's tables from ``start_at`` on, one at a time (:func:`prune_target`)."""
    tables = [t for t in sorted(destination.list_folders(base)) if TABLE_RE.match(t)]
    for table in (t for t in tables if start_at is None or t >= start_at):
        if run.out_of_time():
            why = "out of time; the next pass resumes at this table"
            run.summary.outcomes.append(
                Outcome(entry.name, str(destination.id), f"{base}/{table}", "", "deferred", why, 0, 0)
            )
            logger.info("retention deferred a table", table=table)
            return table
        run.at = table
        if run.on_table is not None and table != start_at:
            run.on_table(table)
        if _prune_series(run, entry, destination, table):
            return table
    run.at = None  # the round is done
    return None


def _prune_series(run: PrunePass, entry: Entry, destination: Destination, series: str | None) -> bool:
    """One catalog (a table of a dataset, or a query export): its decisions and removals; True
    when out of time left some of its removals to the next prune."""
    assert entry.retention is not None
    found = catalog(entry, run.config, destination, series, sizes=run.sizes)
    if found is None:
        return False
    summary, dry_run = run.summary, run.dry_run
    act = Act(run.config, found, entry.retention, now=run.now, dry_run=dry_run, message_id=run.message_id)
    if not dry_run:
        for orphan in found.orphans():
            act.report(orphan, "removed by an earlier prune, reported now")
    cut = False
    for _series, units in found.series():
        for decision in act.decisions(units):
            unit = decision.entry.item
            if decision.action == "prune" and run.out_of_time():
                summary.outcomes.append(act.outcome(unit, "deferred", "out of time; next prune"))
                cut = True
                continue
            run.remove(partial(act.apply, decision), partial(act.outcome, unit, "failed"))
    return cut


class Act:
    """Decisions and their effects for one catalog (one entry at one destination)."""

    def __init__(
        self,
        config: Config,
        found: Catalog,
        retention: Retention,
        *,
        now: dt.datetime,
        dry_run: bool,
        message_id: str | None,
    ) -> None:
        self.config, self.found, self.retention = config, found, retention
        self.now, self.dry_run, self.message_id = now, dry_run, message_id
        self.destination = found.destination
        self.pending = dt.timedelta(minutes=config.verify.deadline_minutes) + SETTLE_EXTRA

    def decisions(self, units: list[Unit]) -> list[Decision[Unit]]:
        dated = [Dated(u.date, u.started, u.name, u) for u in units]
        return decide(
            dated,
            self.retention,
            is_in_sync=lambda d: self._in_sync(d.item),
            is_settled=lambda d: self._settled(d.item),
        )

    def _in_sync(self, unit: Unit) -> bool:
        """The unit's newest run folder has a current result here that is in_sync (and no recheck
        said otherwise). Same-day runs of a query export share one day folder and a rerun overwrites
        its files, so an older run's in_sync says nothing about what the folder holds now."""
        if not unit.runs:
            return False
        run = max(unit.runs, key=lambda r: r.first_seen or EPOCH)  # unknown start: the oldest
        state = verify_markers.state_of(run.markers)
        if not state.reported or f"recheck-mismatch-{state.round}.json" in run.markers:
            return False
        name = verify_markers.marker(
            run.folder.prefix, str(self.destination.id), verify_markers.Kind.RESULT, state.round
        )
        body = verify_markers.read(self.config.state_bucket_name, name)
        return body is not None and body.get("status") == Status.IN_SYNC

    def _settled(self, unit: Unit) -> bool:
        """No run folder of ``unit`` may still be delivering or awaiting its verify result here."""
        for run in unit.runs:
            seen = run.first_seen
            if not run.final and seen is not None and self.now - seen < self.pending:
                return False
        return True

    def outcome(self, unit: Unit, action: str, why: str) -> Outcome:
        return Outcome(
            self.found.entry.name,
            str(self.destination.id),
            unit.path,
            unit.date.isoformat(),
            action,
            why,
            unit.files,
            unit.bytes,
        )

    def apply(self, decision: Decision[Unit]) -> Outcome:
        unit = decision.entry.item
        if decision.action != "prune":
            return self.outcome(unit, decision.action, decision.why)
        why = f"retention {self.retention.describe()}: {decision.why}"
        if self.dry_run:
            return self.outcome(unit, "prune", why)
        unit.measure(self.destination)  # for the report: a names-only catalog did not count them
        runs = unit.runs or [KnownRun(self._folder_of(unit))]
        for run in runs:
            marker = verify_markers.folder(run.folder.prefix, str(self.destination.id)) + PRUNING
            verify_markers.claim(self.config.state_bucket_name, marker, {"path": unit.path, "reason": why})
        self.destination.delete_folder(unit.path)
        if unit.run_id is not None:  # the day folder of a table, once its last run folder is gone
            self.destination.delete_folder(unit.path.rsplit("/", 1)[0], recursive=False)
        logger.info("run folder pruned", path=unit.path, files=unit.files, bytes=unit.bytes, reason=why)
        removed = f"removed {self.destination.location(unit.path)} ({unit.files} files, {unit.bytes} bytes)"
        for run in runs:
            self.report(run, f"{why}; {removed}")
        return self.outcome(unit, "pruned", why)

    def _folder_of(self, unit: Unit) -> RunFolder:
        """A run folder for a unit the buckets no longer know: the table's run, or the query's day."""
        entry = self.found.entry
        if isinstance(entry, DatasetExport):
            source = source_of(entry, self.config, unit.series)
            return RunFolder(self.config.export_prefix.strip("/"), source, unit.date, unit.run_id or "unknown")
        return RunFolder(self.config.export_prefix.strip("/"), source_of(entry, self.config), unit.date, "unknown")

    def report(self, run: KnownRun, reason: str) -> None:
        """The one ``pruned`` result of ``run`` at this destination (claimed with ``pruned.json``)."""
        folder = run.folder
        result = VerifyResult(
            status=Status.PRUNED,
            destination=self.destination.id,
            run_id=folder.run_id if folder.run_id != "unknown" else None,
            source=folder.source,
            reason=reason,
            stage=Stage.PRUNE,
            message_id=self.message_id,
            manifest=gcs.uri(self.config.bucket, folder.manifest_name),
            date=folder.date.isoformat(),
            finished_at=self.now.isoformat(),
        )
        marker = verify_markers.folder(folder.prefix, str(self.destination.id)) + PRUNED
        publish_once(self.config.state_bucket_name, marker, result, config=self.config)
