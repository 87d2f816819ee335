"""The daily re-verify of ``in_sync`` runs (``verify.recheck_days``), a pass of the verify sweep.

A run whose destination result was ``in_sync`` is otherwise never looked at again, so a file
deleted or changed at the destination later would only be found by hand. Each sweep (every
30 minutes by default) ends with this pass; it looks at every run folder with a result
(``result-{k}.json``) written in the last ``verify.recheck_days`` days (0 = off) whose current
round's result at a destination is ``in_sync`` and was decided before today (UTC), and at most once per (run
folder, destination) and UTC day —
claimed with ``{run folder}_verify/{destination}/recheck-{YYYYMMDD}.json`` in the state bucket
(``if_generation_match=0``; a claim still busy after a verify invocation's longest life was left
by one stopped at its timeout, seen as such in the listing, and is taken over:
:func:`shared.budgeted_pass.claim_pair`) — compares the destination again
(:func:`shared.verify.flow.run_comparison`, the same full check as the first verification):

- still in sync: nothing is published (logged; the day's marker records it);
- no longer in sync: one ``mismatch`` with stage ``verify:recheck`` naming the missing, extra
  and differing files, published (and alerted) through :func:`shared.reporting.results.report`
  once per round (``recheck-mismatch-{k}.json``): later days do not repeat it. A recheck does
  not self-heal; ``offsite verify RUN --destination D --publish`` does, and that heal's round ends in a
  new result, which later rechecks look at again.

Run folders that retention removed at a destination (``pruning.json``) are not rechecked there.

The candidates come from the listing of every run's markers in the state bucket, in parts
across sweeps where it is long (:mod:`shared.verify.marker_scan`). The pass starts no new
comparison after ``budget_s`` (from the start of the sweep); the due pairs it did not reach are
handed to other verify instances as recheck requests on verify-requests
(:func:`recheck_requested`), and only if that publish fails is the first of them where the next
sweep's listing starts. A transient
failure releases the day's marker (the next sweep tries again); a permanent one (e.g. the
destination is no longer configured, an exported file expired from GCS) is logged and
recorded in the day's marker.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from shared import budgeted_pass, log
from shared.budgeted_pass import PassCounts, record_outcome, stop_time
from shared.config import Config
from shared.errors import PermanentError, RejectedInput
from shared.gcp import gcs, pubsub
from shared.ids import DestinationId
from shared.layout import RUN_NAME, parse_object_name, yyyymmdd
from shared.messages import RECHECK_BATCH, VerifyRequest
from shared.topology import VERIFY_REQUESTS, VERIFY_TIMEOUT_S
from shared.verify import marker_scan
from shared.verify import markers as verify_markers
from shared.verify.flow import RunContext, Trigger, build_result, publish_once, run_comparison
from shared.verify.runs import RunObjects, RunRef, load_manifest
from shared.verify.superseded import replaced_at

logger = log.get_logger(__name__)

# from the sweep's start (its listing, then the overdue pass run first); the prune pass runs after
DEFAULT_BUDGET_S = VERIFY_TIMEOUT_S - 120.0


@dataclass
class RecheckSummary(PassCounts):
    runs_recent: int = 0
    checked: int = 0
    mismatches: int = 0
    handed_over: int = 0  # due pairs published as recheck requests for other verify instances


def recheck(
    config: Config,
    *,
    now: dt.datetime,
    message_id: str | None = None,
    started: float | None = None,
    budget_s: float = DEFAULT_BUDGET_S,
    scan_budget_s: float | None = None,
    scan_check_every: int = gcs.LIST_PAGE_SIZE,
) -> RecheckSummary:
    """Re-verify the recent in_sync (run folder, destination)s not rechecked today (module docstring).
    The candidates and their markers come from a part of the state bucket's listing
    (:mod:`shared.verify.marker_scan`): run folders with a result written in the last
    ``recheck_days``. By default the listing takes as much as half the remaining budget, reading
    the clock every ``scan_check_every`` objects; ``scan_budget_s`` sets that time instead."""
    summary = RecheckSummary()
    days = config.verify.recheck_days
    if days <= 0:
        return summary
    stop_at = stop_time(started, budget_s)
    cursor = marker_scan.cursor(config.state_bucket_name, config.export_prefix)
    start = cursor.read()
    # the listing may take half of what the budget leaves; the comparisons get the rest
    scan_s = scan_budget_s if scan_budget_s is not None else max(0.0, stop_at - time.monotonic()) / 2
    part = marker_scan.scan(
        config.state_bucket_name,
        config.export_prefix,
        now - dt.timedelta(days=days),
        start=start,
        stop_at=time.monotonic() + scan_s,
        check_every=scan_check_every,
    )
    summary.runs_recent = len(part.index)
    first_deferred = _recheck_listed(config, part, now, stop_at, message_id, summary)
    # a deferred pair is where the next sweep starts listing: nothing is passed over
    next_start = first_deferred if first_deferred is not None else part.next_start
    if next_start != start:
        cursor.save(next_start, now)
    logger.info("recheck done", recheck_days=days, listed_from=start, next_start=next_start, **vars(summary))
    return summary


def _recheck_listed(
    config: Config,
    part: marker_scan.MarkerScan,
    now: dt.datetime,
    stop_at: float,
    message_id: str | None,
    summary: RecheckSummary,
) -> str | None:
    """Recheck each listed (run folder, destination) that is due, until ``stop_at``; returns the
    first run folder left for the next sweep, if any."""
    today = yyyymmdd(now.date())
    overflow: list[tuple[str, str]] = []  # due pairs past stop_at: handed to other verify instances
    for prefix in sorted(part.index):
        try:
            run = _run_of(config, prefix)
        except RejectedInput as exc:  # markers outside a run folder's layout: nothing to compare
            logger.warning("recheck skipped markers outside a run folder", error=str(exc))
            continue
        for destination, names in sorted(part.index[prefix].items()):
            round_ = _due_round(prefix, destination, names, today, partial(_abandoned, part.busy, now=now))
            if round_ is None:
                continue
            if time.monotonic() > stop_at:
                overflow.append((prefix, destination))
                continue
            try:
                with log.bind(run_id=run.folder.run_id, table=run.folder.source.label, destination=destination):
                    _recheck_one(config, run, destination, round_, today, now, message_id, summary)
            except Exception as exc:  # noqa: BLE001 - e.g. the claim itself failed: the next sweep tries again
                summary.failures += 1
                logger.warning("recheck could not claim a run", error=str(exc), run_id=run.folder.run_id)
    return _hand_over(overflow, summary)


def _hand_over(pairs: list[tuple[str, str]], summary: RecheckSummary) -> str | None:
    """Publish the due pairs this sweep had no time for as recheck requests on verify-requests
    (``RECHECK_BATCH`` run folders a message, per destination): other verify instances compare
    them now, each claiming its pair as the sweep would. Returns the first run folder left for
    the next sweep's listing when publishing failed (None: every pair was handed over)."""
    if not pairs:
        return None
    by_destination: dict[str, list[str]] = {}
    for prefix, destination in pairs:
        by_destination.setdefault(destination, []).append(prefix)
    requests = [
        VerifyRequest(recheck=tuple(prefixes[i : i + RECHECK_BATCH]), destination=DestinationId.parse(destination))
        for destination, prefixes in sorted(by_destination.items())
        for i in range(0, len(prefixes), RECHECK_BATCH)
    ]
    try:
        pubsub.publish_all(VERIFY_REQUESTS, requests, origin="verify-recheck")
    except Exception as exc:  # noqa: BLE001 - the pairs stay due: the next sweep lists them again
        summary.deferred += len(pairs)
        logger.warning("could not hand rechecks over; the next sweep lists them again", error=str(exc))
        return min(prefix for prefix, _ in pairs)
    summary.handed_over += len(pairs)
    logger.info("recheck handed pairs to other verify instances", pairs=len(pairs), requests=len(requests))
    return None


def recheck_requested(
    config: Config,
    request: VerifyRequest,
    *,
    now: dt.datetime,
    message_id: str | None = None,
    started: float | None = None,
    budget_s: float = DEFAULT_BUDGET_S,
) -> RecheckSummary:
    """A recheck request (``{"recheck": [run folder, …], "destination": D}``, from a sweep that
    ran out of time): each run folder is rechecked at D if it is still due, exactly as the
    sweep's own pass would (its markers listed again, the day's claim taken). What this
    invocation has no time for is left: the next sweep finds it due and hands it over again.
    RejectedInput when a run folder is not one (nothing is done then)."""
    summary = RecheckSummary()
    assert request.recheck and request.destination is not None
    destination = str(request.destination)
    runs = [_run_of(config, prefix) for prefix in request.recheck]
    if config.verify.recheck_days <= 0:
        return summary
    stop_at, today = stop_time(started, budget_s), yyyymmdd(now.date())
    bucket = config.state_bucket_name
    for run in runs:
        if time.monotonic() > stop_at:
            summary.deferred += 1
            continue
        names, busy = _markers_of(bucket, run.folder.prefix, destination)
        due = _due_round(run.folder.prefix, destination, names, today, partial(_abandoned, busy, now=now))
        if due is None:
            continue
        with log.bind(run_id=run.folder.run_id, table=run.folder.source.label, destination=destination):
            _recheck_one(config, run, destination, due, today, now, message_id, summary)
    logger.info("recheck request done", destination=destination, folders=len(runs), **vars(summary))
    return summary


def _markers_of(bucket: str, prefix: str, destination: str) -> tuple[set[str], dict[str, dt.datetime | None]]:
    """One pair's marker names, and the busy claims among them, as the sweep's listing has them."""
    base = verify_markers.folder(prefix, destination)
    listed = gcs.list_prefix(bucket, base)
    busy = {info.name: info.time_created for info in listed if budgeted_pass.is_busy(info.metadata)}
    return {info.name[len(base) :] for info in listed}, busy


def _run_of(config: Config, prefix: str) -> RunRef:
    parsed = parse_object_name(prefix + RUN_NAME, config.export_prefix, config.project)
    if parsed is None:
        raise RejectedInput(
            f"verify request.recheck: {prefix!r} is not a run folder under {config.export_prefix}/ "
            "(expected {prefix}/{dataset}/{table}/{YYYYMMDD}/{run_id}/)"
        )
    return RunRef(config.bucket, parsed[0], None, True, True)


def _due_round(
    prefix: str, destination: str, names: set[str], today: str, abandoned: Callable[[str], bool]
) -> int | None:
    """The round whose in_sync result to recheck, or None: no result yet for the current round
    (the normal flow or the sweep decides), removed by retention (``pruning.json``: nothing there
    to recheck), this round's recheck mismatch already reported, or rechecked (or being
    rechecked) today. A claim of today's left busy by an invocation stopped at its timeout
    (``abandoned(marker name)``) is due again: :func:`_recheck_one` takes it over."""
    state = verify_markers.state_of(names)
    if not state.reported or verify_markers.PRUNING in names:
        return None
    base = verify_markers.folder(prefix, destination)
    if (
        verify_markers.marker(prefix, destination, verify_markers.Kind.RECHECK_MISMATCH, state.round)[len(base) :]
        in names
    ):
        return None
    daily = verify_markers.marker(prefix, destination, verify_markers.Kind.RECHECK, today)
    if daily[len(base) :] in names and not abandoned(daily):
        return None
    return state.round


def _abandoned(busy: dict[str, dt.datetime | None], name: str, now: dt.datetime) -> bool:
    """A listed claim marker ``name`` still busy (``busy``: name → when claimed) and abandoned."""
    return name in busy and budgeted_pass.abandoned(busy[name], now)


def _day_of(timestamp: object) -> dt.date | None:
    try:
        return dt.datetime.fromisoformat(str(timestamp)).astimezone(dt.UTC).date()
    except ValueError:
        return None


def _recheck_one(
    config: Config,
    run: RunRef,
    destination: str,
    round_: int,
    today: str,
    now: dt.datetime,
    message_id: str | None,
    summary: RecheckSummary,
) -> None:
    bucket, prefix = config.state_bucket_name, run.folder.prefix
    daily = verify_markers.marker(prefix, destination, verify_markers.Kind.RECHECK, today)
    body: dict[str, Any] = {"round": round_, "checked_at": now.isoformat(), "status": "checking"}
    if not budgeted_pass.claim_pair(bucket, daily, body, now, "checked_at"):
        return  # another sweep instance has it, or finished it today
    try:
        outcome = _compare(config, run, destination, round_, now, message_id, summary)
    except PermanentError as exc:
        summary.failures += 1
        logger.error("recheck could not check a run", error=str(exc))
        outcome = {"status": "failed", "reason": str(exc)}
    except Exception as exc:  # noqa: BLE001 - the next sweep tries again; the other runs go on
        summary.failures += 1
        logger.warning("recheck hit a transient failure; the next sweep retries", error=str(exc))
        verify_markers.release(bucket, daily)
        return
    record_outcome(bucket, daily, {**body, **outcome}, "recheck")


def _compare(
    config: Config,
    run: RunRef,
    destination: str,
    round_: int,
    now: dt.datetime,
    message_id: str | None,
    summary: RecheckSummary,
) -> dict[str, Any]:
    """Compare once; publish a mismatch (once per round). Returns the outcome for the day's marker."""
    try:
        manifest = load_manifest(config.bucket, run.folder)
    except RejectedInput as exc:
        return {"status": "skipped", "reason": str(exc)}
    if manifest is None or destination not in manifest.destinations:
        return {"status": "skipped", "reason": "no manifest listing this destination"}
    prior = verify_markers.read(
        config.state_bucket_name,
        verify_markers.marker(run.folder.prefix, destination, verify_markers.Kind.RESULT, round_),
    )
    if not prior or prior.get("status") != "in_sync":
        return {"status": "skipped", "reason": f"round {round_} result is {(prior or {}).get('status')}"}
    if _day_of(prior.get("finished_at")) == now.date():
        return {"status": "skipped", "reason": "verified today"}
    if replaced_at(config, run.folder, destination, manifest.file_name, now=now):
        return {"status": "skipped", "reason": "replaced by a newer run of the same day in a shared folder"}
    ctx = RunContext(config, run.folder, manifest, message_id)
    objects = RunObjects(config.bucket, run.folder)
    comparison = run_comparison(ctx, destination, objects.sha1)
    summary.checked += 1
    if comparison.in_sync:
        logger.info("recheck: still in sync", round=round_)
        return {"status": "in_sync"}
    result = build_result(
        ctx,
        destination,
        comparison,
        "mismatch",
        Trigger.RECHECK,
        heal_attempts=round_,
        note=f"was in_sync at {prior.get('finished_at') or 'its verification'}; found by the daily recheck "
        "(verify.recheck_days), which does not self-heal",
        started=objects.started,
        now=now,
    )
    marker = verify_markers.marker(run.folder.prefix, destination, verify_markers.Kind.RECHECK_MISMATCH, round_)
    if not publish_once(config.state_bucket_name, marker, result, config=config):
        return {"status": "mismatch", "reported": False}
    summary.mismatches += 1
    logger.warning("recheck: no longer in sync", summary=comparison.summary())
    return {"status": "mismatch", "reported": True, "summary": comparison.summary()}
