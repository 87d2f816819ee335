"""Waiting for runs to be verified, and the per-run, per-destination summary the demo prints.

Given run ids, :func:`wait_for_results` finds their run folders in GCS (one per table or query
export), their destinations (manifest, else ``_run.json``), and polls the run history
(:mod:`shared.reporting.history`) until each (run folder, destination) has a final result, or a
run-level failure (a ``rejected``/``failed`` result without a destination) ends it.
:func:`summary_lines` formats them; ``all_in_sync`` is the demo's exit condition: every
delivery ``in_sync`` with ``check: sha1``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from offsite.cli.output import human_bytes
from shared.config import Config
from shared.delivery.routing import load_run
from shared.errors import PermanentError
from shared.messages import VerifyResult
from shared.reporting.history import read as read_history
from shared.verify.runs import find_runs, load_manifest

FINAL = frozenset({"in_sync", "mismatch", "incomplete", "rejected", "failed"})


@dataclass
class Delivery:
    """One (run folder, destination) and its final result once known."""

    run_id: str
    source: str
    date: str
    destination: str
    result: VerifyResult | None = None
    files_expected: int | None = None  # from the manifest, once it is written
    bytes_expected: int | None = None


@dataclass
class Progress:
    deliveries: list[Delivery] = field(default_factory=list)
    run_failures: dict[str, VerifyResult] = field(default_factory=dict)  # run id → run-level failure
    missing_runs: list[str] = field(default_factory=list)  # run ids with no folder in GCS yet
    pending_manifests: list[str] = field(default_factory=list)  # folders without a manifest yet

    @property
    def done(self) -> bool:
        waiting_runs = [r for r in self.missing_runs if r not in self.run_failures]
        return not waiting_runs and all(d.result is not None for d in self.deliveries)

    @property
    def all_in_sync(self) -> bool:
        return (
            self.done
            and not self.run_failures
            and bool(self.deliveries)
            and all(
                d.result is not None and d.result.status == "in_sync" and d.result.check == "sha1"
                for d in self.deliveries
            )
        )


def progress(config: Config, run_ids: Iterable[str], since: dt.datetime) -> Progress:
    """Where the runs are now (one GCS listing per run id, one history read)."""
    run_ids = list(dict.fromkeys(run_ids))
    state = Progress()
    for run_id in run_ids:
        runs = find_runs(config.bucket, config.export_prefix, config.project, run_id=run_id)
        if not runs:
            state.missing_runs.append(run_id)
        for run in runs:
            label = run.folder.source.label
            try:
                manifest = load_manifest(config.bucket, run.folder)
                routing = None if manifest else load_run(config.bucket, run.folder)
            except PermanentError:
                manifest = routing = None  # rejected: the history says so
            if manifest is None:
                state.pending_manifests.append(run.folder.prefix)
            names = manifest.destinations if manifest else (routing.destinations if routing else ())
            files = len(manifest.files) if manifest else None
            size = manifest.total_bytes if manifest else None
            for dest in names:
                state.deliveries.append(Delivery(run_id, label, run.folder.date.isoformat(), dest, None, files, size))
    latest: dict[tuple[str, str, str], VerifyResult] = {}
    for result in read_history(config.state_bucket_name, since, run_ids=run_ids):
        if result.status not in FINAL or not result.run_id:
            continue
        if result.destination is None:
            if result.status in ("rejected", "failed"):
                state.run_failures[result.run_id] = result
            continue
        latest[(result.run_id, result.source.label if result.source else "?", result.destination)] = result
    for d in state.deliveries:
        d.result = latest.get((d.run_id, d.source, d.destination))
    return state


def wait_for_results(
    config: Config,
    run_ids: Iterable[str],
    *,
    timeout_s: float = 600.0,
    poll_s: float = 2.0,
    on_poll: Callable[[Progress], None] | None = None,
) -> Progress:
    """Poll until every delivery of ``run_ids`` has a final result or ``timeout_s`` passes."""
    run_ids = list(run_ids)
    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    deadline = time.monotonic() + timeout_s
    while True:
        state = progress(config, run_ids, since)
        if on_poll is not None:
            on_poll(state)
        if (state.done and state.deliveries) or time.monotonic() >= deadline:
            return state
        time.sleep(poll_s)


def summary_lines(state: Progress) -> list[str]:
    """Per run folder, per destination: status, check, files, bytes, duration; then a verdict."""
    lines: list[str] = []
    by_run: dict[tuple[str, str, str], list[Delivery]] = {}
    for d in state.deliveries:
        by_run.setdefault((d.run_id, d.source, d.date), []).append(d)
    for (run_id, source, date), deliveries in sorted(by_run.items()):
        lines.append(f"run {run_id}  {source}  {date}")
        for d in sorted(deliveries, key=lambda x: x.destination):
            r = d.result
            if r is None:
                lines.append(f"  {d.destination:<14} (no result yet)")
                continue
            duration = f"{r.duration_s:.1f} s" if r.duration_s is not None else "-"
            line = (
                f"  {d.destination:<14} {r.status:<10} check: {r.check or '-':<9} "
                f"files {r.files_present}/{r.files_expected}  bytes {human_bytes(r.bytes_present)}  {duration}"
            )
            if r.status != "in_sync" and r.reason:
                line += f"\n{'':<17}{r.reason}"
            lines.append(line)
    for run_id in state.missing_runs:
        failure = state.run_failures.get(run_id)
        lines.append(f"run {run_id}: " + (f"{failure.status}: {failure.reason}" if failure else "no run folder found"))
    for run_id, failure in sorted(state.run_failures.items()):
        if run_id not in state.missing_runs:
            lines.append(f"run {run_id}: {failure.status} at {failure.stage}: {failure.reason}")
    total = len(state.deliveries)
    good = sum(1 for d in state.deliveries if d.result and d.result.status == "in_sync" and d.result.check == "sha1")
    verdict = "all" if state.all_in_sync else "NOT all"
    lines.append(f"{verdict} deliveries in sync with sha1: {good} of {total}")
    return lines
