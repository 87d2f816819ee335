"""The scheduled sweep (``{"sweep": true}`` on verify-requests, from Cloud Scheduler).

Receipt-triggered verification only reports a run once every file has arrived; the sweep
reports the runs that never got there. For every run folder whose current round started more
than ``verify.deadline_minutes`` ago (round 0: ``_run.json`` written; round k: heal attempt k
started) and that has no result for that round:

- no manifest (the export never finished): ``incomplete`` per destination of ``_run.json``;
- files missing at a destination: ``incomplete`` naming them (once per round,
  ``incomplete-{k}.json``), and a self-heal of the missing files when attempts remain (a
  later sweep starts a heal the round's ``incomplete`` announced, when an error came between);
- everything there: the normal decision (``in_sync``/``mismatch``/heal) — the receipts were lost.

Every result is claimed by its marker and published with :func:`shared.verify.flow.publish_once`:
when publishing fails the marker is released, so the next sweep publishes it.

No overdue run is started ``OVERDUE_BUDGET_S`` (300 s) after the sweep began: the rest wait
for the next sweep, so many overdue runs (a destination down for hours) cannot take the time of
the passes after this one. Only folders with any activity (an object written) in the last
``deadline + 1 day`` are looked at: older ones were swept long ago or are left to ``offsite status`` / ``offsite
verify``. The sweep lists the export prefix streamed, keeping figures per run folder, not the
listed objects, and for at most ``LISTING_BUDGET_S`` (180 s): a longer listing (tens of
thousands of tables kept for weeks) is read in parts across sweeps, each ending at a run
folder's boundary, from a cursor in the state bucket (``sweep/{export_prefix}/verify-cursor.json``;
:mod:`shared.listing_parts`; docs/capacity.md, "The sweeps' listings").

Then the recheck pass (:mod:`shared.verify.recheck`, ``verify.recheck_days``): runs verified in
the last N days whose result was ``in_sync`` are compared again, once a day each, and a file
deleted or changed at a destination since is reported as a ``mismatch`` (stage ``verify:recheck``).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from shared import log
from shared.config import Config
from shared.delivery.routing import load_run
from shared.errors import PermanentError, RejectedInput
from shared.gcp import gcs
from shared.layout import run_folder_of
from shared.listing_parts import Cursor, Part, list_next_part
from shared.messages import VerifyResult
from shared.verify import heal as verify_heal
from shared.verify import markers as verify_markers
from shared.verify.flow import RunContext, Trigger, publish_once, utcnow, verify_destination
from shared.verify.recheck import DEFAULT_BUDGET_S as RECHECK_BUDGET_S
from shared.verify.recheck import recheck
from shared.verify.runs import GcsObject, RunIndex, RunRef, load_manifest

LOOKBACK_EXTRA = dt.timedelta(days=1)
# from the sweep's start: no overdue run is started later, so a sweep with many (a destination
# down for hours) still leaves time for the recheck, the alert flush and retention's pass
OVERDUE_BUDGET_S = RECHECK_BUDGET_S - 120.0
# from the sweep's start: the export prefix's listing stops at a run folder's boundary after it,
# leaving the overdue pass 120 s (~500 pages of 1,000 objects at 0.35 s a page; docs/capacity.md)
LISTING_BUDGET_S = OVERDUE_BUDGET_S - 120.0
logger = log.get_logger(__name__)


@dataclass
class SweepSummary:
    runs_seen: int = 0
    runs_due: int = 0
    published: int = 0
    failures: int = 0
    deferred: int = 0  # overdue runs left to the next sweep (out of time)
    rechecked: int = 0
    recheck_mismatches: int = 0
    alerts_sent: int = 0
    listed_from: str = ""  # where this sweep's part of the export listing began ("": the start)
    listing_next: str = ""  # where the next sweep's part begins ("": this part reached the end)


def sweep(
    config: Config,
    *,
    now: dt.datetime | None = None,
    message_id: str | None = None,
    overdue_budget_s: float = OVERDUE_BUDGET_S,
    listing_budget_s: float = LISTING_BUDGET_S,
    listing_check_every: int = gcs.LIST_PAGE_SIZE,
) -> SweepSummary:
    """Report overdue runs (see the module docstring); none is started ``overdue_budget_s`` after
    the sweep began (the rest are the next sweep's), and the export listing stops
    ``listing_budget_s`` after it (reading the clock every ``listing_check_every`` objects).
    Re-raises the first transient failure at the end."""
    clock = time.monotonic()
    now = now or utcnow()
    deadline = dt.timedelta(minutes=config.verify.deadline_minutes)
    runs, activity, part = list_runs(config, now, stop_at=clock + listing_budget_s, check_every=listing_check_every)
    summary = SweepSummary(listed_from=part.start, listing_next=part.next_start)
    transient: Exception | None = None
    for run in runs:
        summary.runs_seen += 1
        latest = activity.get(run.folder.prefix)
        if run.started is None or now - run.started < deadline or (latest and now - latest > deadline + LOOKBACK_EXTRA):
            continue
        summary.runs_due += 1
        if time.monotonic() - clock > overdue_budget_s:
            summary.deferred += 1
            continue
        with log.bind(run_id=run.folder.run_id, table=run.folder.source.label):
            try:
                summary.published += sweep_run(run, config, now=now, deadline=deadline, message_id=message_id)
            except PermanentError as exc:
                summary.failures += 1
                logger.error("sweep could not check a run", error=str(exc))
            except Exception as exc:  # noqa: BLE001 - sweep the other runs, then let the request be retried
                summary.failures += 1
                logger.warning("sweep hit a transient failure", error=str(exc))
                transient = transient or exc
    try:
        rechecks = recheck(config, now=now, message_id=message_id, started=clock)
        summary.rechecked, summary.recheck_mismatches = rechecks.checked, rechecks.mismatches
    except Exception as exc:  # noqa: BLE001 - the overdue results are out; the next sweep rechecks
        logger.warning("recheck pass failed", error=str(exc))
    from shared.reporting.alerts import flush_all

    summary.alerts_sent = flush_all(config, started=clock)  # what the rate limit held back, within the budget
    logger.info("sweep done", **vars(summary))
    if transient is not None:
        raise transient
    return summary


def cursor(state_bucket: str, export_prefix: str) -> Cursor:
    """Where the next sweep's part of the export listing starts."""
    return Cursor(state_bucket, f"sweep/{export_prefix.strip('/')}/verify-cursor.json")


def list_runs(
    config: Config, now: dt.datetime, *, stop_at: float | None = None, check_every: int = gcs.LIST_PAGE_SIZE
) -> tuple[list[RunRef], dict[str, dt.datetime], Part]:
    """This sweep's part of the export prefix's listing (all of it when it fits before ``stop_at``):
    its run folders, each folder's newest object creation time (data and control files), and
    where the part began and the next begins (saved in :func:`cursor`). Only per-folder figures
    are kept, never the objects: the prefix holds every run the bucket's lifecycle rule still
    keeps (docs/capacity.md)."""
    head = config.export_prefix.strip("/") + "/"
    index = RunIndex(config.bucket, config.export_prefix, config.project)
    latest: dict[str, dt.datetime] = {}

    def folder_of(name: str) -> str:
        return run_folder_of(name, head)

    def add(info: gcs.ObjectInfo) -> None:
        obj = GcsObject.from_info(info)
        index.add(obj)
        folder = folder_of(obj.name)
        if folder != obj.name and obj.created is not None and (folder not in latest or obj.created > latest[folder]):
            latest[folder] = obj.created

    saved = cursor(config.state_bucket_name, config.export_prefix)
    part = list_next_part(saved, config.bucket, head, folder_of, add, stop_at=stop_at, now=now, check_every=check_every)
    return index.refs(), latest, part


def sweep_run(run: RunRef, config: Config, *, now: dt.datetime, deadline: dt.timedelta, message_id: str | None) -> int:
    """Sweep one overdue run folder; returns how many results it published."""
    try:
        manifest = load_manifest(config.bucket, run.folder)
    except RejectedInput as exc:
        return _reject_once(config, run, exc, message_id, now)
    if manifest is None:
        return _export_incomplete(run, config, now=now, message_id=message_id)
    ctx = RunContext(config, run.folder, manifest, message_id)
    published = 0
    for destination in manifest.destinations:
        with log.bind(destination=destination):
            state = verify_markers.read_state(config.state_bucket_name, run.folder.prefix, destination)
            if state.reported or (
                state.round in state.incompletes and not _heal_announced(config, run, destination, state)
            ):
                continue
            since = run.started
            if state.round:
                since = verify_heal.started_at(
                    verify_heal.attempt_body(config.state_bucket_name, run.folder.prefix, destination, state.round)
                )
            if since is not None and now - since < deadline:
                continue
            try:
                if verify_destination(ctx, destination, Trigger.SWEEP, now=now) is not None:
                    published += 1
            except PermanentError as exc:
                marker = verify_markers.marker(run.folder.prefix, destination, verify_markers.Kind.FAILED, state.round)
                failed = _result(config, run, destination, exc.status, str(exc), message_id, now)
                published += publish_once(config.state_bucket_name, marker, failed, config=config)
    return published


def _heal_announced(config: Config, run: RunRef, destination: str, state: verify_markers.VerifyState) -> bool:
    """The round's ``incomplete`` announced a self-heal that was not started (no ``heal-{k+1}``):
    a transient error came between the two, so this sweep starts it."""
    marker = verify_markers.marker(run.folder.prefix, destination, verify_markers.Kind.INCOMPLETE, state.round)
    body = verify_markers.read(config.state_bucket_name, marker) or {}
    return isinstance(body.get("heal_attempts"), int) and body["heal_attempts"] > state.round


def _reject_once(config: Config, run: RunRef, exc: RejectedInput, message_id: str | None, now: dt.datetime) -> int:
    """Report a run folder whose control files are malformed, once (claimed by a marker)."""
    marker = verify_markers.rejected_name(run.folder.prefix)
    rejected = _result(config, run, None, "rejected", str(exc), message_id, now)
    return int(publish_once(config.state_bucket_name, marker, rejected, config=config))


def _export_incomplete(run: RunRef, config: Config, *, now: dt.datetime, message_id: str | None) -> int:
    """``_run.json`` but no manifest past the deadline: the export did not finish."""
    try:
        routing = load_run(config.bucket, run.folder)
    except RejectedInput as exc:
        return _reject_once(config, run, exc, message_id, now)
    if routing is None:
        return 0
    minutes = int((now - run.started).total_seconds() // 60) if run.started else None
    reason = (
        f"export incomplete: no {gcs.uri(config.bucket, run.folder.manifest_name)}"
        + (f" {minutes} minutes after the run started" if minutes is not None else "")
        + f" (deadline {config.verify.deadline_minutes} min)"
    )
    published = 0
    for destination in routing.destinations:
        marker = verify_markers.marker(run.folder.prefix, destination, verify_markers.Kind.INCOMPLETE, 0)
        incomplete = _result(config, run, destination, "incomplete", reason, message_id, now)
        published += publish_once(config.state_bucket_name, marker, incomplete, config=config)
    return published


def _result(
    config: Config,
    run: RunRef,
    destination: str | None,
    status: str,
    reason: str,
    message_id: str | None,
    now: dt.datetime,
) -> VerifyResult:
    """A sweep result about a run folder that could not be compared (failed, rejected, no manifest)."""
    return VerifyResult(
        status=status,
        destination=destination,
        run_id=run.folder.run_id,
        source=run.folder.source,
        reason=reason,
        stage=Trigger.SWEEP.stage,
        message_id=message_id,
        manifest=gcs.uri(config.bucket, run.folder.manifest_name),
        date=run.folder.date.isoformat(),
        started_at=run.started.isoformat() if run.started else None,
        finished_at=now.isoformat(),
        duration_s=round((now - run.started).total_seconds(), 3) if run.started else None,
    )
