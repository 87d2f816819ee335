"""Retention's daily pass, run at the end of each verify sweep (``{"sweep": true}``, every 30 min).

Each (entry, destination) pair with a ``retention`` policy (datasets, query exports, and
mirrored buckets' versions) is pruned at most once per UTC day: the first sweep of the day that
reaches it claims ``retention/{YYYYMMDD}/{datasets|exports|buckets}/{name}/{destination}.json`` in the state bucket
(``if_generation_match=0``) and prunes it (:func:`shared.retention.prune.prune_target`). Work
is bounded by the sweep's time budget: no removal starts after ``budget_s`` from the start of
the sweep, and a pair left unfinished (or hit by a transient failure) gives its claim back, so
the next sweep of the day continues where this one stopped.

A dataset is pruned one table at a time (each its own catalog, so no step grows with the
dataset), in a round that may span sweeps and days: when the budget stops it before a table
(or inside one), that table is kept as the pair's cursor,
``retention/cursors/datasets/{name}/{destination}.json`` = ``{"next": table, "saved_at": …}``,
and the next sweep (of the day, or the next day's first) resumes there. The cursor is also
saved as each table starts, so an invocation stopped at its timeout mid-round costs the next
pass one table's work again, not the round's. The round's end removes
the cursor and records the day's claim ``done``; a transient failure keeps the table it
happened in as the cursor. So every table is pruned within ceil(tables / tables a day) days.

A permanent failure (e.g. the
destination refuses deletes) is logged and recorded in the day's claim. A claim still
``pruning`` longer than a verify invocation can live (its holder was stopped at the timeout,
mid-listing or mid-removal, and could not give it back) is taken over by the next sweep, under
a generation match (:func:`shared.budgeted_pass.claim_pair`).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass

from shared import log
from shared.budgeted_pass import PassCounts, claim_pair, record_outcome, stop_time
from shared.config import Config, DatasetExport
from shared.config.buckets import BucketMirror
from shared.config.types import TABLE_RE
from shared.destinations.factory import opened
from shared.errors import PermanentError
from shared.gcp import gcs
from shared.layout import yyyymmdd
from shared.retention.prune import Target, prune_target, targets
from shared.retention.summary import PrunePass, PruneSummary
from shared.retention.versions import BucketTarget, bucket_targets, prune_bucket
from shared.topology import VERIFY_TIMEOUT_S
from shared.verify import markers as verify_markers

logger = log.get_logger(__name__)
CLAIMS = "retention/"
CURSORS = f"{CLAIMS}cursors/"  # per pair: {"next": table, "saved_at"} while a round through its tables is unfinished
DEFAULT_BUDGET_S = VERIFY_TIMEOUT_S - 60.0  # from the start of the sweep, which the verify function runs


@dataclass
class DailySummary(PassCounts):
    targets: int = 0
    done: int = 0
    pruned: int = 0


def _section(entry: object) -> str:
    return (
        "buckets" if isinstance(entry, BucketMirror) else "datasets" if isinstance(entry, DatasetExport) else "exports"
    )


def claim_name(target: Target | BucketTarget, now: dt.datetime) -> str:
    entry, destination = target
    return f"{CLAIMS}{yyyymmdd(now.date())}/{_section(entry)}/{entry.name}/{destination}.json"


def cursor_name(target: Target | BucketTarget) -> str:
    """Where a pair's round through its tables stands, across sweeps and days (not per day)."""
    entry, destination = target
    return f"{CURSORS}{_section(entry)}/{entry.name}/{destination}.json"


def read_cursor(bucket: str, name: str) -> str | None:
    """The table the pair's round resumes at; None: from the first (no cursor, or unreadable)."""
    try:
        body = gcs.read_json(bucket, name)
    except PermanentError as exc:  # not JSON: start the round again
        logger.warning("ignored an unreadable retention cursor", cursor=name, error=str(exc))
        body = None
    found = body.get("next") if isinstance(body, dict) else None
    return found if isinstance(found, str) and TABLE_RE.match(found) else None


def save_cursor(bucket: str, name: str, table: str | None, now: dt.datetime) -> None:
    """Keep ``table`` as the pair's cursor (None: the round is done, the cursor is removed). A
    failure only logs: the next pass then resumes at the previous cursor, redoing some tables."""
    try:
        if table is None:
            gcs.delete(bucket, name)
        else:
            body = {"next": table, "saved_at": now.isoformat()}
            gcs.write(bucket, name, json.dumps(body, sort_keys=True).encode(), "application/json")
    except Exception as exc:  # noqa: BLE001 - see the docstring
        logger.warning("could not save the retention cursor", cursor=name, error=str(exc))


def daily_pass(
    config: Config,
    *,
    now: dt.datetime,
    started: float | None = None,
    budget_s: float = DEFAULT_BUDGET_S,
    message_id: str | None = None,
) -> DailySummary:
    """Prune every pair not yet pruned today, within the budget (module docstring)."""
    summary = DailySummary()
    stop_at = stop_time(started, budget_s)
    pairs: list[Target | BucketTarget] = [*targets(config), *bucket_targets(config)]
    for target in pairs:
        summary.targets += 1
        if time.monotonic() > stop_at:
            summary.deferred += 1
            continue
        name = claim_name(target, now)
        if claim_pair(
            config.state_bucket_name, name, {"started_at": now.isoformat(), "status": "pruning"}, now, "started_at"
        ):
            run = PrunePass(config, PruneSummary(dry_run=False), now, stop_at, message_id, sizes=False)
            _prune_pair(config, target, name, run, summary)
    logger.info("retention pass done", **vars(summary))
    return summary


def _prune_pair(
    config: Config, target: Target | BucketTarget, name: str, run: PrunePass, summary: DailySummary
) -> None:
    """Prune one claimed pair (a dataset from its cursor on) and record how far it got."""
    bucket, result = config.state_bucket_name, run.summary
    entry, destination = target
    cursor = cursor_name(target)
    start_at = left = None
    try:
        if isinstance(entry, DatasetExport):
            start_at = read_cursor(bucket, cursor)
            run.on_table = lambda table: save_cursor(bucket, cursor, table, run.now)
        with log.bind(entry=entry.name, destination=str(destination)), opened(destination, config) as handle:
            if isinstance(entry, BucketMirror):
                prune_bucket(run, entry, handle)
            else:
                left = prune_target(run, entry, handle, start_at=start_at)
    except PermanentError as exc:  # the pair's other folders are pruned (PrunePass.remove)
        summary.failures += 1
        summary.pruned += result.count("pruned")
        logger.error("retention could not prune", entry=entry.name, destination=str(destination), error=str(exc))
        failed = {"status": "failed", "reason": str(exc), "pruned": result.count("pruned")}
        if isinstance(entry, DatasetExport) and run.at is None:  # the round reached its end (failures are raised there)
            save_cursor(bucket, cursor, None, run.now)
        record_outcome(bucket, name, failed, "retention")
        return
    except Exception as exc:  # noqa: BLE001 - the next sweep tries again; the other pairs go on
        summary.failures += 1
        summary.pruned += result.count("pruned")
        logger.warning("retention hit a transient failure; the next sweep retries", error=str(exc))
        verify_markers.release(bucket, name)  # the cursor names the table it happened in (saved as it started)
        return
    summary.pruned += result.count("pruned")
    if result.count("deferred"):
        summary.deferred += 1
        summary.failures += 1 if result.count("failed") else 0  # a pass cut short: logged, not raised
        if left is not None:
            save_cursor(bucket, cursor, left, run.now)
        verify_markers.release(bucket, name)  # the next sweep of the day continues
        return
    if isinstance(entry, DatasetExport):  # the round is done (its tables saved the cursor as they started)
        save_cursor(bucket, cursor, None, run.now)
    summary.done += 1
    outcome = {"status": "done", "pruned": result.count("pruned"), "kept": result.count("keep")}
    record_outcome(bucket, name, outcome, "retention")
