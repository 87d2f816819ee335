"""A collect run from plan to result, and each job's freshness record.

The listing writes the run's plan (``collect/{job}/runs/{run_id}/plan.json``: the files it fanned
out, when it started, and the files it ``held``: listed but not collected, an unsupported name or
a case clash); each file's copy writes its outcome (``…/outcomes/{key}.json``); the
copy that finds every planned file settled claims ``…/result.json`` (``if_generation_match=0``)
and reports the run once on ``verify-results`` — files, bytes, duration — and updates
``collect/{job}/freshness.json`` (last run, last collected at), which ``offsite status`` and
``offsite collect status`` show.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared import log, retry
from shared.collect.state import prefix
from shared.config import Config
from shared.config.collect import CollectJob
from shared.gcp import gcs
from shared.ids import Stage, Status
from shared.messages import Source, VerifyResult

logger = log.get_logger(__name__)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _run(job: str, run_id: str) -> str:
    return f"{prefix(job)}runs/{run_id}/"


def source(job: str) -> Source:
    return Source(mode="collect", collect=job)


@dataclass(frozen=True)
class Outcome:
    """What happened to one planned file."""

    key: str
    name: str
    status: str  # collected | already | changed | failed
    size: int = 0
    reason: str | None = None


def earlier_plan(bucket: str, job: str, run_id: str) -> dict[str, Any] | None:
    """The plan an earlier listing of this run saved (its message redelivered), or None."""
    plan = gcs.read_json(bucket, _run(job, run_id) + "plan.json")
    return plan if isinstance(plan, dict) else None


def planned_keys(plan: dict[str, Any] | None) -> set[str]:
    """Keys of the files an earlier listing of this run planned (and fanned out)."""
    return {f["key"] for f in (plan or {}).get("files", [])}


def save_plan(
    bucket: str,
    job: str,
    run_id: str,
    files: list[dict[str, Any]],
    *,
    open_: bool,
    now: dt.datetime,
    held: list[dict[str, Any]] | None = None,
    settling: list[str] | None = None,
    late: list[str] | None = None,
) -> None:
    """Add ``files`` to the run's plan. A run listed again (its message redelivered while files
    were settling) keeps its start time and earlier files; ``open_`` says more listings follow,
    so the run is not reported before they are done. ``held``: the files this listing did not
    collect (name, size, state, reason); ``settling``: the files the next listing waits for;
    ``late``: files first seen by a later listing, left to the next run. The latest listing's
    replace an earlier one's."""

    def planned(found: Any) -> dict[str, Any]:
        before = found if isinstance(found, dict) else {}
        known = {f["key"] for f in before.get("files", [])}
        return {
            "run_id": run_id,
            "started_at": before.get("started_at", now.isoformat()),
            "files": before.get("files", []) + [f for f in files if f["key"] not in known],
            "held": held or [],
            "settling": settling or [],
            "late": late or [],
            "open": open_,
        }

    gcs.update_json(bucket, _run(job, run_id) + "plan.json", planned)


def save_outcome(bucket: str, job: str, run_id: str, outcome: Outcome, *, unless_settled: bool = False) -> None:
    """Record the file's outcome; a ``collected`` one is kept (a redelivery's ``already`` would
    drop its bytes from the run's count), and with ``unless_settled`` any outcome there is."""
    body = {"name": outcome.name, "status": outcome.status, "size": outcome.size, "reason": outcome.reason}

    def kept(found: Any) -> Any:
        settled = isinstance(found, dict) and (unless_settled or found.get("status") == "collected")
        return found if settled else body

    gcs.update_json(bucket, f"{_run(job, run_id)}outcomes/{outcome.key}.json", kept)


def finish_if_complete(config: Config, job: str, run_id: str, now: dt.datetime) -> VerifyResult | None:
    """Report the run when every planned file has an outcome (exactly once); None otherwise."""
    bucket = config.state_bucket_name
    plan = gcs.read_json(bucket, _run(job, run_id) + "plan.json")
    if plan is None or plan.get("open"):
        return None
    base = _run(job, run_id) + "outcomes/"
    names = [info.name for info in gcs.list_prefix(bucket, base)]
    planned = {f["key"] for f in plan["files"]}
    if not planned <= {n[len(base) :].removesuffix(".json") for n in names}:
        return None
    outcomes = [gcs.read_json(bucket, n) or {} for n in names]
    return report_run(config, job, run_id, plan, outcomes, now)


def report_run(
    config: Config, job: str, run_id: str, plan: dict[str, Any], outcomes: list[dict[str, Any]], now: dt.datetime
) -> VerifyResult | None:
    """Claim the run's single result, publish it, update freshness. None when already reported."""
    bucket = config.state_bucket_name
    collected = [o for o in outcomes if o.get("status") == "collected"]
    failed = [o for o in outcomes if o.get("status") == "failed"]
    changed = [o for o in outcomes if o.get("status") == "changed"]
    present = [o for o in outcomes if o.get("status") in ("collected", "already")]
    held = list(plan.get("held", []))
    listed = plan["files"] + held
    started = dt.datetime.fromisoformat(plan["started_at"])
    result = VerifyResult(
        status=Status.FAILED if failed else Status.INCOMPLETE if len(present) < len(listed) else Status.IN_SYNC,
        stage=Stage.COLLECT_COPY,
        run_id=run_id,
        source=source(job),
        check="sha1",
        missing=sorted(str(o.get("name")) for o in failed + changed + held),
        files_expected=len(listed),
        files_present=len(present),
        bytes_expected=sum(int(f.get("size", 0)) for f in listed),
        bytes_present=sum(int(o.get("size", 0)) for o in collected),
        reason=_reasons(failed, outcomes, held, plan.get("late", []))[:2000] or None,
        started_at=started.isoformat(),
        finished_at=now.isoformat(),
        duration_s=round((now - started).total_seconds(), 3),
    )
    if not _report_once(config, job, run_id, result):
        return None  # reported already (a twin's copy, a redelivery)
    update_freshness(bucket, job, result, collected=bool(collected), now=now)
    return result


def _report_once(config: Config, job: str, run_id: str, result: VerifyResult) -> bool:
    """Claim the run's ``result.json`` and publish ``result``; False when it was claimed before.
    A publish that fails deletes this claim (its generation only) and raises: the redelivery
    that retries it must find the result unclaimed, or the run is never reported."""
    from shared.reporting.results import report

    bucket, name = config.state_bucket_name, _run(job, run_id) + "result.json"
    claimed = gcs.create_if_absent(bucket, name, result.to_json(), "application/json")
    if claimed is None:
        return False
    try:
        report(result, config=config)
    except Exception:
        gcs.delete(bucket, name, if_generation_match=claimed)
        raise
    return True


def _reasons(
    failed: list[dict[str, Any]], outcomes: list[dict[str, Any]], held: list[dict[str, Any]], late: list[str]
) -> str:
    """Why a run is not in sync: each failed file, the files that changed, the files held; and
    the files that arrived while it listed (the next run's)."""
    reasons = [f"{o.get('name')}: {o.get('reason')}" for o in failed]
    changed = [_named(o) for o in outcomes if o.get("status") == "changed"]
    if changed:
        reasons.append(f"changed since listed, left for the next run: {', '.join(changed)}")
    if held:
        listed = "; ".join(f"{h.get('name')} ({h.get('reason')})" for h in held)
        reasons.append(f"not collected until renamed at the partner: {listed}")
    if late:
        reasons.append(f"arrived while the run listed, left for the next run: {', '.join(late)}")
    return "; ".join(reasons)


def _named(outcome: dict[str, Any]) -> str:
    reason = outcome.get("reason")
    return f"{outcome.get('name')} ({reason})" if reason else str(outcome.get("name"))


def update_freshness(bucket: str, job: str, result: VerifyResult, *, collected: bool, now: dt.datetime) -> None:
    """``collect/{job}/freshness.json``: the last run (id, status, files, bytes, when) and the last
    time a file was collected. Best effort: logged, never raised."""
    name = prefix(job) + "freshness.json"

    def refreshed(found: Any) -> dict[str, Any]:
        body = {
            **(found if isinstance(found, dict) else {}),
            "job": job,
            "last_run_id": result.run_id,
            "last_run_at": now.isoformat(),
            "last_status": str(result.status),
            "last_files": result.files_present if result.status != Status.SKIPPED else 0,
            "last_bytes": result.bytes_present,
            "last_reason": result.reason,
        }
        if collected:
            body["last_collected_at"] = now.isoformat()
        return body

    try:
        gcs.update_json(bucket, name, refreshed)
    except Exception as exc:  # noqa: BLE001 - freshness is a report, not the work
        logger.error("could not update the freshness record", error=str(exc), job=job)


def record_listing_failure(config: Config, job: str, run_id: str | None, status: Status, reason: str) -> None:
    """A listing that failed for good (or was dead-lettered) writes no result.json; the freshness
    record still names it as the job's last run, so ``offsite collect status`` does not show the
    run before it as the latest. ``last_collected_at`` stays."""
    now = dt.datetime.now(dt.UTC)
    failed = VerifyResult(status=status, stage=Stage.COLLECT_LIST, run_id=run_id, source=source(job), reason=reason)
    update_freshness(config.state_bucket_name, job, failed, collected=False, now=now)


def report_skip(config: Config, job: str, run_id: str, reason: str, day: dt.date, now: dt.datetime) -> VerifyResult:
    """A scheduled day the job's calendar excludes: one ``skipped`` result, and the freshness record."""
    result = VerifyResult(
        status=Status.SKIPPED,
        stage=Stage.COLLECT_LIST,
        run_id=run_id,
        source=source(job),
        reason=reason,
        date=day.isoformat(),
        started_at=now.isoformat(),
        finished_at=now.isoformat(),
    )
    if _report_once(config, job, run_id, result):
        update_freshness(config.state_bucket_name, job, result, collected=False, now=now)
    return result


def run_result(bucket: str, job: str, run_id: str) -> VerifyResult | None:
    """The run's reported result, or None while it is not complete."""
    data = gcs.read_bytes(bucket, _run(job, run_id) + "result.json")
    return VerifyResult.from_json(data) if data is not None else None


def wait_for_run(
    bucket: str,
    job: str,
    run_id: str,
    *,
    timeout_s: float,
    poll_s: float = 1.0,
    since: dt.datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> VerifyResult | None:
    """Poll until the run has its result (``offsite collect run --wait``, the demo, tests): its
    ``result.json``, or its listing's failure in the run history reported since ``since``
    (default: a minute before the call), since a listing that failed writes no result. None
    when ``timeout_s`` passes first."""
    from shared.errors import TransientError
    from shared.reporting.history import read

    since = since or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with retry.waits_end_by(deadline):  # a read retrying past the timeout would overrun it
                result = run_result(bucket, job, run_id)
                history = [] if result is not None else read(bucket, since, run_ids=[run_id])
        except TransientError:
            result, history = None, []  # GCS away for a moment: read again at the next poll
        if result is not None:
            return result
        listing = [r for r in history if r.stage == Stage.COLLECT_LIST and r.status.is_final_failure]
        if listing:
            return listing[-1]
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        sleep(min(poll_s, remaining))


def next_run(job: CollectJob, now: dt.datetime) -> dt.datetime | None:
    """The next scheduled time on a business day of the job's calendar, in its time zone."""
    from shared.schedule import next_fire

    if job.schedule is None:
        return None
    return next_fire(job.schedule, job.time_zone, now, job.calendar)


def status_row(config: Config, job: CollectJob, now: dt.datetime) -> dict[str, Any]:
    """The job's last run (status, files, bytes, reason), last collected at, and next run: what
    ``offsite collect status`` and the HTTP trigger's ``GET /collect`` show."""
    record = freshness(config.state_bucket_name, job.name) or {}
    upcoming = next_run(job, now)
    return {
        "job": job.name,
        "partner": job.partner,
        "last_run_at": record.get("last_run_at"),
        "last_run_id": record.get("last_run_id"),
        "last_status": record.get("last_status"),
        "last_files": record.get("last_files"),
        "last_bytes": record.get("last_bytes"),
        "last_collected_at": record.get("last_collected_at"),
        "last_reason": record.get("last_reason"),
        "next_run": upcoming.isoformat() if upcoming else None,
    }


def freshness(bucket: str, job: str) -> dict[str, Any] | None:
    """The job's freshness record, or None before its first run."""
    raw = gcs.read_json(bucket, prefix(job) + "freshness.json")
    return raw if isinstance(raw, dict) else None
