"""collect_list: one collect request → one ``collect-files`` message per new, stable file.

1. the job must be configured (else the request is rejected, naming the configured jobs);
2. a scheduled day that the job's business calendar excludes is skipped: logged and reported
   (``skipped`` on verify-results), nothing listed; ``ignore_calendar`` overrides;
3. the partner's directory is listed and each file judged (:mod:`shared.collect.selection`):
   new and stable files are planned and fanned out; the listing is kept for the next one;
4. files still settling (new or changed since the previous listing) make the stage raise a
   TransientError *after* fanning out the others: Pub/Sub redelivers the request with backoff,
   and that second listing takes them once two listings agree; a later listing waits only for
   files settling at the one before (:func:`waited_for`), files first seen then are the next
   run's. The run is reported when its last listing is done and every planned file is settled
   (:mod:`shared.collect.runs`);
5. a file whose name collect cannot copy, or whose path differs from another's only in case
   when a destination ignores case, is not taken: logged, and reported with the run as not
   collected (``held`` in its plan); it never stops the other files.
"""

from __future__ import annotations

import datetime as dt
import time

from shared import log
from shared.collect import runs
from shared.collect.messages import CollectFile, CollectRequest, printable
from shared.collect.selection import HELD, Judged, case_clashes, hold_case_clashes, judge, snapshot
from shared.collect.source import SftpSource
from shared.collect.state import done_keys, load_listing, save_listing
from shared.config import Config
from shared.config.collect import CollectJob
from shared.destinations.factory import opened
from shared.errors import RejectedInput, TransientError
from shared.gcp import pubsub
from shared.topology import COLLECT_FILES

logger = log.get_logger(__name__)


def job_named(config: Config, name: str) -> CollectJob:
    job = config.collect_job(name)
    if job is None:
        known = ", ".join(j.name for j in config.collect.jobs) or "none configured"
        raise RejectedInput(f"collect request.collect: {name!r} is not a configured collect job (configured: {known})")
    return job


def open_source(config: Config, job: CollectJob) -> SftpSource:
    return SftpSource(job.partner, config.collect_partner(job.partner), job.directory)


def survey(config: Config, job: CollectJob, *, now_s: float | None = None) -> list[Judged]:
    """The job's directory as the next run would judge it (no state written): CLI ``ls``/``--dry-run``."""
    bucket = config.state_bucket_name
    files = open_source(config, job).list(recursive=job.recursive, max_depth=job.max_depth)
    judged = judge(job, files, load_listing(bucket, job.name), done_keys(bucket, job.name), now_s or time.time())
    if case_clashes(judged):  # rare: only then are the destinations asked how they compare names
        judged = hold_case_clashes(judged, case_folding_destinations(config, job))
    return judged


def case_folding_destinations(config: Config, job: CollectJob) -> list[str]:
    """The job's destinations where names that differ only in case are one file (``folds_case``)."""
    folding = []
    for dest_id in job.destinations:
        with opened(dest_id, config) as dest:
            if dest.abilities.folds_case:
                folding.append(str(dest_id))
    return folding


def report_held(job: CollectJob, judged: list[Judged]) -> list[dict[str, object]]:
    """Log each file the run does not collect (HELD states) and return them for the run's plan."""
    held = [j for j in judged if j.state in HELD]
    for j in held:
        logger.warning(
            "collect skipped a file whose name it cannot copy; rename it at the partner"
            if j.state == "unsupported"
            else "collect held a file whose name differs from another's only in case; rename one at the partner",
            job=job.name,
            file=printable(j.file.name),
            state=j.state,
            reason=j.note,
        )
    return [{"name": printable(j.file.name), "size": j.file.size, "state": j.state, "reason": j.note} for j in held]


def waited_for(judged: list[Judged], plan: dict[str, object] | None) -> tuple[list[str], list[str]]:
    """The settling files this run lists again for, and those it leaves to the next run. The
    first listing waits for every one; a later listing of the run (its redelivery) only for
    those that were settling then, so files that keep arriving do not hold the run open until
    its request is dead-lettered: one first seen late is named in the result and left."""
    settling = [j.file.name for j in judged if j.state == "settling"]
    if plan is None:
        return settling, []
    before = plan.get("settling")
    waited = set(before) if isinstance(before, list) else set()
    return [n for n in settling if n in waited], [printable(n) for n in settling if n not in waited]


def list_and_fan_out(
    config: Config, request: CollectRequest, *, run_id: str, day: dt.date, now: dt.datetime | None = None
) -> list[CollectFile]:
    """The stage's work (module docstring). Returns the messages published."""
    now = now or dt.datetime.now(dt.UTC)
    job = job_named(config, request.collect)
    bucket = config.state_bucket_name
    skip = None if request.ignore_calendar else job.calendar.skip_reason(day)
    if skip is not None:
        logger.info("collect skipped: not a business day", job=job.name, day=day.isoformat(), reason=skip)
        runs.report_skip(config, job.name, run_id, skip, day, now)
        return []
    judged = survey(config, job, now_s=now.timestamp())
    save_listing(bucket, job.name, snapshot(judged), now)
    take = [j for j in judged if j.state == "take"]
    plan = runs.earlier_plan(bucket, job.name, run_id)
    settling, late = waited_for(judged, plan)
    planned = [{"key": j.identity.key, "name": j.file.name, "size": j.file.size, "mtime": j.file.mtime} for j in take]
    earlier = runs.planned_keys(plan)
    messages = [  # a file planned by an earlier listing of this run is already on its way
        CollectFile(collect=job.name, run_id=run_id, name=j.file.name, size=j.file.size, mtime=j.file.mtime)
        for j in take
        if j.identity.key not in earlier
    ]
    if messages:  # published before the plan is saved: a failure in between re-publishes (harmless)
        pubsub.publish_all(COLLECT_FILES, messages, run_id=run_id, collect=job.name)
    held = report_held(job, judged)
    runs.save_plan(
        bucket, job.name, run_id, planned, open_=bool(settling), now=now, held=held, settling=settling, late=late
    )
    states = ("take", "collected", "too_young", "unsupported", "case_clash")
    counts = {state: sum(1 for j in judged if j.state == state) for state in states}
    logger.info(
        "collect listed", job=job.name, fanned_out=len(messages), settling=len(settling), late=len(late), **counts
    )
    if settling:
        raise TransientError(
            f"collect {job.name}: {len(settling)} file(s) new or changed since the previous listing "
            f"({', '.join(settling[:5])}{', …' if len(settling) > 5 else ''}); listing again to see them stable"
        )
    runs.finish_if_complete(config, job.name, run_id, now)
    return messages
