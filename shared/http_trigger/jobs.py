"""``POST /collect/<job>``, ``POST /restore-drill/<dataset>`` and
``GET /restore-drill/<dataset>/<drill_id>``: start a collect run or a restore drill over HTTP, as
the scheduler does on Pub/Sub, for a caller such as Airflow that orchestrates by HTTP; and
``GET /collect[/<job>]``: each job's last run and next run, as ``offsite collect status``;
``GET /restore-drill``: each dataset's last proven restore, as ``offsite restore-drill status``.

Each request is checked against the config before anything is published (a job or a dataset
the config lacks is a 404 naming what it has; a bad body a 400 naming the field), then published
exactly as ``offsite collect run`` and ``offsite restore-drill run`` publish it. ``?wait=SECONDS``
follows it as their ``--wait`` does: 200 once it ended, 202 with ``complete: false`` when the
wait ran out first. Once published, no answer invites a retry (that would start a second run):
a result that cannot be read is named in the 202.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any, TypeVar

from shared import log
from shared.config import Config
from shared.http_trigger.messages import BadRequest, HttpRequest, HttpResponse, error
from shared.http_trigger.params import POLL_S, body_object, run_id_for, wait_param
from shared.ids import Status

logger = log.get_logger(__name__)
T = TypeVar("T")


def _waited(wait: Callable[[], T], what: str) -> tuple[T | None, str | None]:
    """``wait()`` for a request already published, and why it failed (None: it did not). Its
    failure is answered, never raised: a 500 would invite a retry, i.e. a second ``what``."""
    try:
        return wait(), None
    except Exception as exc:
        logger.exception(f"{what} not readable; answering with the {what} started")
        return None, f"the {what} was started; {exc}"


# ---- POST /collect/<job>, GET /collect[/<job>] ---------------------------------------------


def _no_job(config: Config, job: str) -> HttpResponse:
    known = ", ".join(j.name for j in config.collect.jobs) or "none"
    return error(404, f"collect: no job {job!r} in the config (configured: {known})")


def start_collect(request: HttpRequest, config: Config, job: str, sleep: Callable[[float], None]) -> HttpResponse:
    """Publish ``{"collect": JOB}`` on collect-requests (202); ``?wait=`` for its result."""
    from shared.collect.messages import CollectRequest
    from shared.gcp import pubsub
    from shared.stages.fan_out import new_run_id
    from shared.topology import COLLECT_REQUESTS

    if config.collect_job(job) is None:
        return _no_job(config, job)
    wait = wait_param(request.query)
    obj = body_object(request.body, CollectRequest.KIND, ("collect", job))
    if obj.get("run_id") is None:  # ours (or the Idempotency-Key's), so the answer can name the run
        obj["run_id"] = run_id_for(request.idempotency_key) or new_run_id()
    collect = CollectRequest.from_obj(obj)
    published_at = dt.datetime.now(dt.UTC)
    message_id = pubsub.publish(COLLECT_REQUESTS, collect, origin="http-trigger")
    logger.info("collect requested", run_id=collect.run_id, message_id=message_id, job=job)
    answer: dict[str, Any] = {
        "collect": job,
        "run_id": collect.run_id,
        "message_id": message_id,
        "topic": COLLECT_REQUESTS,
        "request": collect.to_dict(),
    }
    if wait is None:
        return HttpResponse(202, answer)
    return _await_collect(config, answer, published_at, wait, sleep)


def _await_collect(
    config: Config, answer: dict[str, Any], published_at: dt.datetime, wait: float, sleep: Callable[[float], None]
) -> HttpResponse:
    """200 with the run's result once reported, else 202 with ``complete: false``."""
    from shared.collect.runs import wait_for_run

    since = published_at - dt.timedelta(minutes=5)  # a failure recorded by a host whose clock is behind ours
    result, unread = _waited(
        lambda: wait_for_run(
            config.state_bucket_name,
            answer["collect"],
            answer["run_id"],
            timeout_s=wait,
            poll_s=POLL_S,
            since=since,
            sleep=sleep,
        ),
        "run",
    )
    if unread is not None:
        return HttpResponse(202, {**answer, "complete": False, "error": unread})
    if result is None:
        return HttpResponse(202, {**answer, "complete": False})
    success = result.status in (Status.IN_SYNC, Status.SKIPPED)
    return HttpResponse(200, {**answer, "complete": True, "success": success, "result": result.to_dict()})


def collect_status(config: Config, job: str | None) -> HttpResponse:
    """``GET /collect``: every job's last run and next run; ``GET /collect/<job>``: that job's."""
    from shared.collect.runs import status_row

    jobs = list(config.collect.jobs)
    if job is not None:
        chosen = config.collect_job(job)
        if chosen is None:
            return _no_job(config, job)
        jobs = [chosen]
    now = dt.datetime.now(dt.UTC)
    rows = [status_row(config, j, now) for j in jobs]
    body: dict[str, Any] = rows[0] if job is not None else {"jobs": rows}
    return HttpResponse(200, {**body, "checked_at": now.isoformat(timespec="seconds")})


# ---- POST /restore-drill/<dataset>, GET /restore-drill/<dataset>/<drill_id> -----------------


def start_drill(request: HttpRequest, config: Config, dataset: str, sleep: Callable[[float], None]) -> HttpResponse:
    """Publish ``{"dataset": D}`` on restore-drills (202, naming the drill); ``?wait=`` for its proof."""
    from shared.errors import RejectedInput
    from shared.gcp import pubsub
    from shared.restore.drill_records import DrillRequest, drill_id_for, drill_of
    from shared.topology import RESTORE_DRILLS

    try:
        drill_of(config, dataset)
    except RejectedInput as exc:
        return error(404, str(exc))
    wait = wait_param(request.query)
    obj = body_object(request.body, DrillRequest.KIND, ("dataset", dataset))
    unknown = sorted(set(obj) - {"dataset", "schema_version"})
    if unknown:  # drill_id and picks continue a drill: the function's own messages
        raise BadRequest(f"{DrillRequest.KIND}.{unknown[0]}: not accepted here (a drill starts from its dataset only)")
    drill = DrillRequest.from_obj(obj)
    published_at = dt.datetime.now(dt.UTC)
    message_id = pubsub.publish(RESTORE_DRILLS, drill, origin="http-trigger")
    drill_id = drill_id_for(message_id)
    if drill_id is None:  # never seen (Pub/Sub ids are digits); published, so a 202 and not a 500
        error_text = f"the drill was started, but Pub/Sub's message id {message_id!r} names no drill to follow"
        return HttpResponse(202, {"dataset": dataset, "message_id": message_id, "error": error_text})
    logger.info("restore drill requested", dataset=dataset, message_id=message_id, drill_id=drill_id)
    answer = {
        "dataset": dataset,
        "drill_id": drill_id,
        "message_id": message_id,
        "topic": RESTORE_DRILLS,
        "status_url": f"/restore-drill/{dataset}/{drill_id}",
    }
    if wait is None:
        return HttpResponse(202, answer)
    from shared.restore.drill_watch import DrillProgress, wait_for_drill

    waited, unread = _waited(
        lambda: wait_for_drill(
            config,
            dataset,
            drill_id,
            message_id=message_id,
            since=published_at,
            timeout_s=wait,
            poll_s=POLL_S,
            sleep=sleep,
        ),
        "drill",
    )
    progress = waited if waited is not None else DrillProgress(dataset, drill_id)
    body = {**answer, **progress.to_dict(waited_s=wait)}
    if unread is not None:
        body["error"] = unread
    return HttpResponse(200 if progress.ended else 202, body)


def drills_status(config: Config) -> HttpResponse:
    """``GET /restore-drill``: per dataset with a drill, its last proven restore and that proof's age."""
    from shared.restore.drill_records import status_rows

    now = dt.datetime.now(dt.UTC)
    return HttpResponse(200, {"datasets": status_rows(config, now), "checked_at": now.isoformat(timespec="seconds")})


_DRILL_ID = re.compile(r"^m([0-9]{1,40})\Z")  # a drill started by Pub/Sub message <digits>


def drill_status(config: Config, dataset: str, drill_id: str) -> HttpResponse:
    """The drill's sample and each table's result so far (200, ``ended`` true once every table is
    reported or its start was refused in the last day; 404 for a dataset without a drill)."""
    from shared.errors import RejectedInput
    from shared.restore.drill_records import drill_of
    from shared.restore.drill_watch import read_progress

    try:
        drill_of(config, dataset)
    except RejectedInput as exc:
        return error(404, str(exc))
    numeric = _DRILL_ID.match(drill_id)
    message_id = numeric.group(1) if numeric else None
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    progress = read_progress(config, dataset, drill_id, message_id=message_id, since=since)
    return HttpResponse(200, progress.to_dict())
