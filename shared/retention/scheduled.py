"""Retention's daily pass, run at the end of each verify sweep (``{"sweep": true}``, every 30 min).

Each (entry, destination) pair with a ``retention`` policy (datasets, query exports, and
mirrored buckets' versions) is pruned at most once per UTC day: the first sweep of the day that
reaches it claims ``retention/{YYYYMMDD}/{datasets|exports|buckets}/{name}/{destination}.json`` in the state bucket
(``if_generation_match=0``) and prunes it (:func:`shared.retention.prune.prune_target`). Work
is bounded by the sweep's time budget: no removal starts after ``budget_s`` from the start of
the sweep, and a pair left unfinished (or hit by a transient failure) gives its claim back, so
the next sweep of the day continues where this one stopped. A permanent failure (e.g. the
destination refuses deletes) is logged and recorded in the day's claim. A claim still
``pruning`` longer than a verify invocation can live (its holder was stopped at the timeout,
mid-listing or mid-removal, and could not give it back) is taken over by the next sweep, under
a generation match (:func:`shared.budgeted_pass.claim_pair`).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from shared import log
from shared.budgeted_pass import PassCounts, claim_pair, record_outcome, stop_time
from shared.config import Config, DatasetExport
from shared.config.buckets import BucketMirror
from shared.destinations.factory import opened
from shared.errors import PermanentError
from shared.layout import yyyymmdd
from shared.retention.prune import Target, prune_target, targets
from shared.retention.summary import PrunePass, PruneSummary
from shared.retention.versions import BucketTarget, bucket_targets, prune_bucket
from shared.topology import VERIFY_TIMEOUT_S
from shared.verify import markers as verify_markers

logger = log.get_logger(__name__)
CLAIMS = "retention/"
DEFAULT_BUDGET_S = VERIFY_TIMEOUT_S - 60.0  # from the start of the sweep, which the verify function runs


@dataclass
class DailySummary(PassCounts):
    targets: int = 0
    done: int = 0
    pruned: int = 0


def claim_name(target: Target | BucketTarget, now: dt.datetime) -> str:
    entry, destination = target
    section = (
        "buckets" if isinstance(entry, BucketMirror) else "datasets" if isinstance(entry, DatasetExport) else "exports"
    )
    return f"{CLAIMS}{yyyymmdd(now.date())}/{section}/{entry.name}/{destination}.json"


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
    bucket = config.state_bucket_name
    pairs: list[Target | BucketTarget] = [*targets(config), *bucket_targets(config)]
    for target in pairs:
        summary.targets += 1
        if time.monotonic() > stop_at:
            summary.deferred += 1
            continue
        name = claim_name(target, now)
        if not claim_pair(bucket, name, {"started_at": now.isoformat(), "status": "pruning"}, now, "started_at"):
            continue  # done today, or another sweep instance has it
        entry, destination = target
        result = PruneSummary(dry_run=False)
        try:
            with log.bind(entry=entry.name, destination=str(destination)), opened(destination, config) as handle:
                run = PrunePass(config, result, now, stop_at, message_id)
                if isinstance(entry, BucketMirror):
                    prune_bucket(run, entry, handle)
                else:
                    prune_target(run, entry, handle)
        except PermanentError as exc:  # the pair's other folders are pruned (PrunePass.remove)
            summary.failures += 1
            summary.pruned += result.count("pruned")
            logger.error("retention could not prune", entry=entry.name, destination=str(destination), error=str(exc))
            failed = {"status": "failed", "reason": str(exc), "pruned": result.count("pruned")}
            record_outcome(bucket, name, failed, "retention")
            continue
        except Exception as exc:  # noqa: BLE001 - the next sweep tries again; the other pairs go on
            summary.failures += 1
            logger.warning("retention hit a transient failure; the next sweep retries", error=str(exc))
            verify_markers.release(bucket, name)
            continue
        summary.pruned += result.count("pruned")
        if result.count("deferred"):
            summary.deferred += 1
            verify_markers.release(bucket, name)  # the next sweep of the day continues
            continue
        summary.done += 1
        outcome = {"status": "done", "pruned": result.count("pruned"), "kept": result.count("keep")}
        record_outcome(bucket, name, outcome, "retention")
    logger.info("retention pass done", **vars(summary))
    return summary
