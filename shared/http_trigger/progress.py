"""A run's progress per table and destination, read from the run history (as ``offsite status`` does).

Each table (a run folder: one source of one run) is expected at its destinations — from the
plan when the HTTP trigger just published the request, else from the run folders' ``_run.json``
in the exports bucket. The latest result of each (table, destination) in the history decides
its status; ``pending`` while there is none. ``in_sync``, ``mismatch``, ``failed`` and
``rejected`` are final (verify publishes one final result per run and destination once
self-heal is done); ``incomplete`` is not (the sweep's heal may still complete it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.config import Config
from shared.ids import Stage, Status
from shared.messages import VerifyResult

PENDING = "pending"
FINAL = frozenset({Status.IN_SYNC, Status.MISMATCH, Status.FAILED, Status.REJECTED})


@dataclass
class TableProgress:
    """One source of the run: its label (``sales.orders`` / ``export:daily``) and each destination's state."""

    label: str
    table: str | None
    date: str | None
    destinations: dict[str, VerifyResult | None] = field(default_factory=dict)
    reason: str | None = None  # a failure of the whole source (no destination named)

    def status_of(self, destination: str) -> str:
        result = self.destinations.get(destination)
        return str(result.status) if result is not None else PENDING

    @property
    def done(self) -> bool:
        return bool(self.destinations) and all(r is not None and r.status in FINAL for r in self.destinations.values())

    @property
    def status(self) -> str:
        """``in_sync`` when every destination is; else the first final failure; else pending/incomplete."""
        statuses = [self.status_of(d) for d in sorted(self.destinations)]
        failure = next((s for s in statuses if s in FINAL and s != Status.IN_SYNC), None)
        if failure:
            return failure
        if statuses and all(s == Status.IN_SYNC for s in statuses):
            return str(Status.IN_SYNC)
        return Status.INCOMPLETE.value if Status.INCOMPLETE in statuses else PENDING

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.label, "status": self.status, "date": self.date}
        if self.table is not None:
            out["table"] = self.table
        out["destinations"] = {d: _destination(self.destinations[d]) for d in sorted(self.destinations)}
        if self.reason:
            out["reason"] = self.reason
        return out


def _destination(result: VerifyResult | None) -> dict[str, Any]:
    if result is None:
        return {"status": PENDING}
    out: dict[str, Any] = {"status": str(result.status)}
    for key in ("check", "files_expected", "files_present", "bytes_expected", "bytes_present", "finished_at"):
        value = getattr(result, key)
        if value not in (None, 0) or key.startswith("files"):
            out[key] = value
    if result.reason and result.status != Status.IN_SYNC:
        out["reason"] = result.reason
    problems = {title.replace(" ", "_"): names for title, names in result.differences() if names}
    if problems:
        out["differences"] = problems
    return out


@dataclass
class RunProgress:
    run_id: str
    tables: list[TableProgress]
    rejected: list[str] = field(default_factory=list)  # the request itself was refused (no source)

    @property
    def complete(self) -> bool:
        return bool(self.rejected) or (bool(self.tables) and all(t.done for t in self.tables))

    @property
    def success(self) -> int:
        return sum(1 for t in self.tables if t.status == Status.IN_SYNC)

    @property
    def errors(self) -> int:
        failed = sum(1 for t in self.tables if t.status in FINAL and t.status != Status.IN_SYNC)
        return failed + len(self.rejected)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "run_id": self.run_id,
            "complete": self.complete,
            "success": self.success,
            "errors": self.errors,
            "tables": [t.to_dict() for t in self.tables],
        }
        if self.rejected:
            out["rejected"] = self.rejected
        return out


# Results about a run's copies after it ended (retention removed one; the drill restored one):
# they are not its delivery's outcome, so a run verified in_sync stays complete.
LATER_STAGES = frozenset({Stage.PRUNE, Stage.RESTORE_DRILL})


def progress(
    run_id: str,
    expected: Mapping[str, tuple[str | None, str | None, Iterable[str]]],
    results: Iterable[VerifyResult],
) -> RunProgress:
    """Fold ``results`` (oldest first) over the ``expected`` tables: label → (table, date, destinations).

    Results of sources that were not expected (a run listed before all its folders existed)
    are added as they come.
    """
    tables: dict[str, TableProgress] = {
        label: TableProgress(label, table, date, {str(d): None for d in dests})
        for label, (table, date, dests) in expected.items()
    }
    rejected: list[str] = []
    for result in results:
        if result.run_id != run_id or result.stage in LATER_STAGES:
            continue
        if result.source is None:
            if result.status in (Status.REJECTED, Status.FAILED):
                rejected.append(f"{result.stage or '-'}: {result.reason or result.status}")
            continue
        label = result.source.label
        entry = tables.setdefault(label, TableProgress(label, result.source.table, result.date, {}))
        if result.destination is None:
            # e.g. the export failed: every destination fails with it; a destination's own final
            # result stands (a dead-lettered verify of the manifest does not undo an in_sync)
            if result.status in FINAL:
                entry.reason = result.reason
                for dest in list(entry.destinations) or ["-"]:
                    held = entry.destinations.get(dest)
                    if held is None or held.status not in FINAL:
                        entry.destinations[dest] = result
            continue
        entry.destinations[str(result.destination)] = result
    return RunProgress(run_id, sorted(tables.values(), key=lambda t: t.label), rejected)


def read_results(config: Config, run_id: str, since: dt.datetime) -> list[VerifyResult]:
    """Every result of ``run_id`` in the history since ``since``, oldest first."""
    from shared.reporting.history import read

    return read(config.state_bucket_name, since, run_ids=[run_id])


def expected_from_bucket(config: Config, run_id: str) -> dict[str, tuple[str | None, str | None, tuple[str, ...]]]:
    """The run's tables as the fan-out recorded them (:mod:`shared.run_index`: no listing), else as
    its folders in the exports bucket say (``_run.json``, else the manifest)."""
    from shared import run_index
    from shared.delivery.routing import load_run
    from shared.verify.runs import find_runs, load_manifest

    expected: dict[str, tuple[str | None, str | None, tuple[str, ...]]] = {}
    indexed = run_index.exports_of(config.state_bucket_name, run_id)
    for export in indexed or []:
        expected[export.source.label] = (
            export.source.table,
            export.date.isoformat(),
            tuple(str(d) for d in export.destinations),
        )
    if indexed is not None:
        return expected
    for ref in find_runs(config.bucket, config.export_prefix, config.project, run_id=run_id):
        folder = ref.folder
        run = load_run(config.bucket, folder) if ref.has_run else None
        manifest = load_manifest(config.bucket, folder) if run is None and ref.has_manifest else None
        dests = run.destinations if run else (manifest.destinations if manifest else ())
        expected[folder.source.label] = (folder.source.table, folder.date.isoformat(), tuple(str(d) for d in dests))
    return expected
