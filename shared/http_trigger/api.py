"""The HTTP trigger's endpoints (bq-to-box-sync's API, plus run status, verify and ingest):

- ``GET /`` and ``GET /health``: ``{"status": "healthy", "service": ..., "timestamp": ...}``
- ``POST /sync`` with an export request (``{"dataset": "sales", "tables": "a,b"}``; every field of
  export-requests is accepted) and ``POST /sync/<dataset>`` (body optional): validated exactly as
  fan_out validates the Pub/Sub message (same code, same messages; 400 when bad), published on
  ``export-requests``; answers ``{dataset, run_id, date, destinations, tables}`` (202).
  ``?wait=SECONDS`` waits for the verify results of every table and destination and answers
  seed 000's ``{dataset, success, errors, tables}`` (200; 202 with ``complete: false`` if the
  wait ran out first).
- ``GET /runs/<run_id>[?days=N]``: each table's status per destination.
- ``POST /verify/<run_id>[?destination=D]``: publishes a verify request (202).
- ``POST /verify`` with a verify request (``{"export": "orders_daily", "date": "2025-01-08"}``,
  ``{"dataset", "table", "date"}``; every form of verify-requests): checked against the config,
  published (202), as ``POST /verify/<run_id>``.
- ``POST /ingest`` with an optional ingest request: publishes it on ingest-requests (202);
  ``GET /ingest``: each table's sync state, the config's selection and the ingest's schedule
  (200; both :mod:`shared.http_trigger.ingest`).
- ``POST /collect/<job>[?wait=SECONDS]``, ``POST /restore-drill/<dataset>[?wait=SECONDS]`` and
  ``GET /restore-drill/<dataset>/<drill_id>``: a collect run or a restore drill, started and
  followed as the CLI's ``--wait`` does; ``GET /collect[/<job>]``: each job's last and next run;
  ``GET /restore-drill``: each dataset's last proven restore (:mod:`shared.http_trigger.jobs`).
- ``POST /mirror/<bucket>[?wait=SECONDS]``: a mirrored bucket's reconcile; ``GET /mirror[/<bucket>]``:
  each destination's last reconcile and the next run (:mod:`shared.http_trigger.mirror`).

Every endpoint needs a Google OIDC ID token (:mod:`shared.http_trigger.auth`).
The web framework stays in functions/http_trigger/main.py: this module sees a plain
:class:`HttpRequest` and answers an :class:`HttpResponse`.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from shared import log
from shared.config import Config
from shared.errors import OffsiteError, RejectedInput, TransientError
from shared.http_trigger import auth, progress
from shared.http_trigger.ingest import ingest_status, start_ingest
from shared.http_trigger.jobs import collect_status, drill_status, drills_status, start_collect, start_drill
from shared.http_trigger.messages import BadRequest, HttpRequest, HttpResponse, error
from shared.http_trigger.mirror import bucket_segment, mirror_status, start_reconcile
from shared.http_trigger.params import POLL_S, body_object, days_param, run_id_for, segment, wait_param
from shared.messages import ExportRequest, VerifyRequest
from shared.reporting.polling import poll_history

logger = log.get_logger(__name__)

SERVICE = "offsite-http-trigger"
ENDPOINTS = (
    "GET /, GET /health, POST /sync, POST /sync/<dataset>, GET /runs/<run_id>, POST /verify, POST /verify/<run_id>, "
    "POST /ingest, GET /ingest, GET /collect, POST|GET /collect/<job>, GET /restore-drill, "
    "POST /restore-drill/<dataset>, GET /restore-drill/<dataset>/<drill_id>, GET /mirror, POST|GET /mirror/<bucket>"
)


def handle(request: HttpRequest, config: Config, *, sleep: Callable[[float], None] = time.sleep) -> HttpResponse:
    """Authenticate, route, run; every failure becomes a JSON error with its status."""
    try:
        caller = auth.verify(request.authorization, config.http)
    except auth.Unauthorized as exc:
        headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if exc.status == 401 else {}
        logger.warning("request refused", status=exc.status, reason=str(exc), path=request.path)
        return error(exc.status, str(exc), **headers)
    except TransientError as exc:
        logger.warning("cannot check tokens now", error=str(exc))
        return error(503, f"cannot check the token now: {exc}", **{"Retry-After": "10"})
    with log.bind(caller=caller.email or caller.subject, method=request.method, path=request.path):
        try:
            return _route(request, config, sleep)
        except (BadRequest, RejectedInput) as exc:
            logger.info("bad request", reason=str(exc))
            return error(400, str(exc))
        except TransientError as exc:
            logger.warning("transient failure", error=str(exc))
            return error(503, str(exc), **{"Retry-After": str(int(exc.retry_after or 10))})
        except OffsiteError as exc:
            logger.error("request failed", error=str(exc))
            return error(500, str(exc))
        except Exception:
            logger.exception("unexpected failure")
            return error(500, "unexpected failure; the function's log has the details")


def _route(request: HttpRequest, config: Config, sleep: Callable[[float], None]) -> HttpResponse:
    parts = [p for p in request.path.split("/") if p]
    endpoints: dict[tuple[str, int], dict[str, Callable[[], HttpResponse]]] = {
        ("", 0): {"GET": health},
        ("health", 1): {"GET": health},
        ("ingest", 1): {"POST": lambda: start_ingest(request, config), "GET": lambda: ingest_status(config)},
        ("sync", 1): {"POST": lambda: sync(request, config, None, sleep)},
        ("sync", 2): {"POST": lambda: sync(request, config, segment(parts, "dataset"), sleep)},
        ("runs", 2): {"GET": lambda: run_status(request, config, segment(parts, "run_id"))},
        ("verify", 1): {"POST": lambda: verify(request, config, None)},
        ("verify", 2): {"POST": lambda: verify(request, config, segment(parts, "run_id"))},
        ("collect", 1): {"GET": lambda: collect_status(config, None)},
        ("collect", 2): {
            "POST": lambda: start_collect(request, config, segment(parts, "job"), sleep),
            "GET": lambda: collect_status(config, segment(parts, "job")),
        },
        ("mirror", 1): {"GET": lambda: mirror_status(request, config, None)},
        ("mirror", 2): {
            "POST": lambda: start_reconcile(request, config, bucket_segment(parts), sleep),
            "GET": lambda: mirror_status(request, config, bucket_segment(parts)),
        },
        ("restore-drill", 1): {"GET": lambda: drills_status(config)},
        ("restore-drill", 2): {"POST": lambda: start_drill(request, config, segment(parts, "dataset"), sleep)},
        ("restore-drill", 3): {
            "GET": lambda: drill_status(config, segment(parts, "dataset"), segment(parts, "drill_id", 2))
        },
    }
    methods = endpoints.get((parts[0] if parts else "", len(parts)))
    if methods is None:
        return error(404, f"no endpoint {request.path[:200]!r}; endpoints: {ENDPOINTS}")
    handler = methods.get(request.method.upper())
    if handler is None:
        allowed = ", ".join(methods)
        return error(405, f"{request.method} is not allowed on {request.path} (allowed: {allowed})", Allow=allowed)
    return handler()


def health() -> HttpResponse:
    """The function answers (its token was accepted): the service and the time of the answer."""
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return HttpResponse(200, {"status": "healthy", "service": SERVICE, "timestamp": now})


# ---- POST /sync ----------------------------------------------------------------------------


def sync_request(body: bytes, dataset: str | None, run_id: str) -> ExportRequest:
    """The export request a POST asks for, parsed exactly as fan_out parses export-requests.

    ``dataset`` comes from the path of ``/sync/<dataset>`` (the body may then be empty, and may
    not name another dataset). The run id is filled in (unless the body names one; ``null`` names
    none) so the response can name the run fan_out will create.
    """
    obj = body_object(body, ExportRequest.KIND, None if dataset is None else ("dataset", dataset))
    if obj.get("run_id") is None:  # absent or null (not a run id): ours, so the answer can name the run
        obj["run_id"] = run_id
    return ExportRequest.from_obj(obj)


def sync(request: HttpRequest, config: Config, dataset: str | None, sleep: Callable[[float], None]) -> HttpResponse:
    from shared.gcp import pubsub
    from shared.gcp.bigquery import warehouse
    from shared.stages.fan_out import expected_exports, new_run_id
    from shared.topology import EXPORT_REQUESTS

    wait = wait_param(request.query)
    export = sync_request(request.body, dataset, run_id_for(request.idempotency_key) or new_run_id())
    published_at = dt.datetime.now(dt.UTC)
    stamp = published_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # fan_out's plan without its reports: fan_out reports a table it leaves out, once per run
    tasks = expected_exports(
        export, config, warehouse() if export.dataset else None, run_id=export.run_id or "", publish_time=stamp
    )
    # The day fan_out would choose from the publish time, fixed now: the answer names the folders.
    message = export.model_copy(update={"date": export.date or tasks[0].date})
    message_id = pubsub.publish(EXPORT_REQUESTS, message.to_json(), origin="http-trigger")
    tables = [t.source.table or t.source.label for t in tasks]
    logger.info("export requested", run_id=message.run_id, message_id=message_id, tables=tables)
    answer: dict[str, Any] = {
        ("dataset" if export.dataset else "export"): export.dataset or export.export,
        "run_id": message.run_id,
        "date": tasks[0].date.isoformat(),
        "destinations": [str(d) for d in tasks[0].destinations],
        "tables": tables,
        "message_id": message_id,
    }
    if wait is None:
        return HttpResponse(202, answer)
    expected = {t.source.label: (t.source.table, t.date.isoformat(), tuple(map(str, t.destinations))) for t in tasks}
    since = published_at - dt.timedelta(minutes=5)
    run, unread = _await_run(config, answer["run_id"], expected, since, wait, sleep)
    done: dict[str, Any] = {k: answer[k] for k in ("dataset", "export") if k in answer}
    done.update(run.to_dict())
    if unread is not None and not run.complete:
        done["error"] = f"the run was started; its progress could not be read: {unread}"
    return HttpResponse(200 if run.complete else 202, done)


def _await_run(
    config: Config,
    run_id: str,
    expected: Mapping[str, tuple[str | None, str | None, tuple[str, ...]]],
    since: dt.datetime,
    wait: float,
    sleep: Callable[[float], None],
) -> tuple[progress.RunProgress, str | None]:
    """The run's progress once complete or when ``wait`` runs out, and why the history could not
    be read, if it could not (:func:`shared.reporting.polling.poll_history`)."""
    polled = poll_history(
        lambda: progress.progress(run_id, expected, progress.read_results(config, run_id, since)),
        lambda run: run.complete,
        progress.progress(run_id, expected, []),
        wait=wait,
        sleep=sleep,
        what="run history",
        poll_s=POLL_S,
    )
    return polled.value, polled.unread


# ---- GET /runs/<run_id>, POST /verify[/<run_id>] -------------------------------------------


def run_status(request: HttpRequest, config: Config, run_id: str) -> HttpResponse:
    days = days_param(request.query)
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    results = progress.read_results(config, run_id, since)
    expected = progress.expected_from_bucket(config, run_id)
    if not results and not expected:
        return error(
            404, f"no run {run_id!r}: no run folder in gs://{config.bucket} and no result in the last {days} days"
        )
    return HttpResponse(200, progress.progress(run_id, expected, results).to_dict())


def verify(request: HttpRequest, config: Config, run_id: str | None) -> HttpResponse:
    """Publish a verify request on verify-requests (202). ``POST /verify/<run_id>``: that run (the
    body may name only it); ``POST /verify``: the body is the request, any form of verify-requests
    (``{"export", "date"}``, ``{"dataset", "table", "date"}``, ``{"run_id"}``, ``{"sweep": true}``).
    ``?destination=`` sets ``destination``; a dataset, export or destination the config does not
    name is a 400 listing the configured ones."""
    from shared.gcp import pubsub
    from shared.topology import VERIFY_REQUESTS

    # POST /verify: the body is the request (an empty one a 400)
    obj = body_object(request.body, VerifyRequest.KIND, None if run_id is None else ("run_id", run_id))
    if "destination" in request.query:
        obj["destination"] = request.query["destination"]
    verify_request = VerifyRequest.from_obj(obj)
    _check_configured(verify_request, config)
    message_id = pubsub.publish(VERIFY_REQUESTS, verify_request, origin="http-trigger")
    return HttpResponse(
        202,
        {
            "run_id": verify_request.run_id,
            "message_id": message_id,
            "topic": VERIFY_REQUESTS,
            "request": verify_request.to_dict(),
        },
    )


def _check_configured(verify_request: VerifyRequest, config: Config) -> None:
    """What the config alone can tell is wrong with a verify request: the field, the value, the choices."""
    checks = (
        ("dataset", verify_request.dataset, [d.name for d in config.datasets]),
        ("export", verify_request.export, [e.name for e in config.exports]),
        ("destination", verify_request.destination, [str(d) for d in config.destination_names()]),
    )
    for name, value, known in checks:
        if value is not None and str(value) not in known:
            raise BadRequest(
                f"{VerifyRequest.KIND}.{name}: {str(value)!r} is not a configured {name} "
                f"(configured: {', '.join(known) or 'none'})"
            )


def as_json(response: HttpResponse) -> str:
    return json.dumps(response.body, sort_keys=True)
