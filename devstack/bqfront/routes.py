"""The front's HTTP side: which requests it answers itself and which go to bqemulator.

Every request goes to bqemulator unchanged (:mod:`devstack.bqfront.proxy`) except:

- a jobs.insert for bqemulator whose job id is taken: answered 409 ``duplicate`` as BigQuery does
  (bqemulator itself would run a second job under the same id); while bqemulator runs one (it
  answers the insert when done), ``jobs.get`` shows it RUNNING; one it answers DONE gets its
  audit-log entry published, as every job BigQuery finishes does;
- ``POST /bigquery/v2/projects/{p}/jobs`` (jobs.insert) whose configuration is ``extract``,
  or ``query`` with an ``EXPORT DATA OPTIONS(...) AS ...`` statement: run here, in a thread;
- ``POST .../queries`` (jobs.query) with an EXPORT DATA statement: the same, answered like jobs.query;
- ``GET .../jobs/{id}``, ``GET .../queries/{id}`` (getQueryResults), ``POST .../jobs/{id}/cancel``,
  ``DELETE .../jobs/{id}/delete`` for those jobs; any other job id goes to bqemulator.

A body that is not a JSON object is forwarded as is (bqemulator answers it).

Tables that require a partition filter (:mod:`devstack.bqfront.partition_filter`): tables.insert,
patch and update are passed on and the flag remembered, tables.get shows it, and a query job (or
jobs.query, or a dry run) over such a table without a filter on its partitioning column fails
400 ``invalidQuery`` before it reaches bqemulator. Table expiration (:mod:`devstack.bqfront.expiry`)
likewise: remembered, shown, and an expired table deleted at its next tables.get (404).

Test controls (not BigQuery's): ``POST /_bqfront/holds`` ``{"prefix": P}`` keeps jobs whose id
starts with P RUNNING until ``DELETE /_bqfront/holds/{P}`` (a job for bqemulator: its insert is
sent on, and answered, only then); ``GET /_bqfront/holds`` lists them. ``POST /_bqfront/failures``
``{"job_id": J, "reason": R}`` makes export job J fail with R after writing its files
(:mod:`devstack.bqfront.failing`); ``GET /_bqfront/failures`` lists the planned ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from devstack.bqfront.errors import JobFailure, duplicate_job, error_body
from devstack.bqfront.jobs import Job, new_resource
from devstack.bqfront.server import Front, FrontConfig, job_kind
from devstack.bqfront.statement import is_export_data

logger = logging.getLogger("devstack.bqfront")
MAX_WAIT_S = 10.0  # getQueryResults / jobs.query hold the request at most this long (BigQuery: 10 s default)
JOBS = "/bigquery/v2/projects/{project}/jobs"
QUERIES = "/bigquery/v2/projects/{project}/queries"
TABLES = "/bigquery/v2/projects/{project}/datasets/{dataset}/tables"
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


class Handlers:
    """One coroutine per route; each falls back to forwarding when the job is not the front's."""

    def __init__(self, front: Front) -> None:
        self.front = front
        # (project, job id) → the RUNNING resource of an insert bqemulator is running (it answers
        # when the query is done): BigQuery's job exists, RUNNING, from the insert on.
        self._inserting: dict[tuple[str, str], dict[str, Any]] = {}
        self._held_tasks: set[asyncio.Task[None]] = set()  # held inserts, sent on when released

    def _job(self, request: Request) -> Job | None:
        return self.front.jobs.get(request.path_params["project"], request.path_params["job_id"])

    async def forward(self, request: Request) -> Response:
        return await self.front.upstream.forward(request, await request.body())

    async def insert(self, request: Request) -> Response:
        raw = await request.body()
        body = _json(raw)
        kind = job_kind(body) if body is not None else None
        project = request.path_params["project"]
        query = ((body or {}).get("configuration") or {}).get("query")
        if kind is None and isinstance(query, dict):
            try:
                self.front.partition_filters.check(project, str(query.get("query", "")), query.get("defaultDataset"))
            except JobFailure as failure:
                return failure_response(failure)
        if body is None or kind is None:
            return await self._forward_insert(request, raw, body)
        if (body.get("configuration") or {}).get("dryRun"):
            return JSONResponse(_dry_run(project, body, kind, self.front.config.public_url))
        try:
            _job, pending = await self.front.start(project, body, kind)
        except JobFailure as failure:
            return failure_response(failure)
        return JSONResponse(pending)

    async def _forward_insert(self, request: Request, raw: bytes, body: dict[str, Any] | None) -> Response:
        """A job bqemulator runs; 409 ``duplicate`` when its id is taken, as BigQuery answers
        (bqemulator would run a second job under the same id): offsite inserts under
        deterministic ids first and re-attaches on 409. bqemulator answers the insert with the
        job DONE (it runs a query inside the request); BigQuery writes an audit-log entry for
        every job it finishes, so the front publishes one for these too (devstack/bqfront/audit.py).
        A held job is answered RUNNING at once, as BigQuery answers an insert, and sent on when
        released."""
        project = request.path_params["project"]
        ref = (body or {}).get("jobReference") or {}
        job_id = ref.get("jobId")
        if not job_id or ((body or {}).get("configuration") or {}).get("dryRun"):
            return await self.front.upstream.forward(request, raw)
        key, duplicate = (project, str(job_id)), duplicate_job(project, ref.get("location") or "US", str(job_id))
        if key in self._inserting:
            return failure_response(duplicate)
        running = self._inserting[key] = _running(project, body or {}, self.front.config.public_url)
        try:
            taken = await self.front.id_taken(project, str(job_id))
        except BaseException:
            self._inserting.pop(key, None)
            raise
        if taken:
            self._inserting.pop(key, None)
            return failure_response(duplicate)
        if self.front.holds.is_held(str(job_id)):
            task = asyncio.create_task(self._run_held(request, raw, key))
            self._held_tasks.add(task)
            task.add_done_callback(self._held_tasks.discard)
            return JSONResponse(running)
        response, done = await self._run_upstream(request, raw, key)
        if done is not None:  # its audit entry, after the answer
            response.background = BackgroundTask(self.front.audit.emit, done)
        return response

    async def _run_upstream(
        self, request: Request, raw: bytes, key: tuple[str, str]
    ) -> tuple[Response, dict[str, Any] | None]:
        """bqemulator's answer to the insert, and the job's resource when it is DONE."""
        try:
            response, answer = await self.front.upstream.forward_read(request, raw)
        finally:
            self._inserting.pop(key, None)
        done = _done_job(response.status_code, answer)
        if done is not None:
            self.front.finished.remember_job(done)
        return response, done

    async def _run_held(self, request: Request, raw: bytes, key: tuple[str, str]) -> None:
        await run_in_threadpool(self.front.holds.wait, key[1])
        response, done = await self._run_upstream(request, raw, key)
        if done is None:
            logger.warning("held job %s: bqemulator answered its insert %s", key[1], response.status_code)
        else:
            await run_in_threadpool(self.front.audit.emit, done)

    async def get_job(self, request: Request) -> Response:
        job = self._job(request)
        if job is not None:
            return JSONResponse(job.snapshot())
        project, job_id = request.path_params["project"], request.path_params["job_id"]
        known = self._inserting.get((project, job_id)) or self.front.finished.job(project, job_id)
        if known is not None:
            return JSONResponse(known)
        response, answer = await self.front.upstream.forward_read(request, b"")
        done = _done_job(response.status_code, answer)
        if done is not None:
            self.front.finished.remember_job(done)
        return response

    async def query_results(self, request: Request) -> Response:
        job = self._job(request)
        if job is not None:
            return await _results(job, request.query_params.get("timeoutMs"))
        project, job_id = request.path_params["project"], request.path_params["job_id"]
        running = self._inserting.get((project, job_id))
        if running is not None:
            incomplete = {"jobReference": running["jobReference"], "jobComplete": False}
            return JSONResponse({"kind": "bigquery#getQueryResultsResponse", **incomplete})
        query = _answer_key(request.url.query)
        kept = self.front.finished.answer(project, job_id, query)
        if kept is not None:
            return Response(kept, media_type="application/json")
        response, answer = await self.front.upstream.forward_read(request, b"")
        if response.status_code == 200 and answer:
            self.front.finished.remember_answer(project, job_id, query, answer)
        return response

    async def jobs_query(self, request: Request) -> Response:
        raw = await request.body()
        body = _json(raw)
        if body is None or not is_export_data(str(body.get("query", ""))):
            try:
                if body is not None:
                    self.front.partition_filters.check(
                        request.path_params["project"], str(body.get("query", "")), body.get("defaultDataset")
                    )
            except JobFailure as failure:
                return failure_response(failure)
            return await self.front.upstream.forward(request, raw)
        keep = ("query", "queryParameters", "parameterMode", "defaultDataset", "useLegacySql")
        insert_body = {
            "jobReference": {"jobId": f"bqfront_{uuid.uuid4().hex}", "location": body.get("location")},
            "configuration": {"query": {k: body[k] for k in keep if k in body}},
        }
        try:
            job, _pending = await self.front.start(request.path_params["project"], insert_body, "QUERY")
        except JobFailure as failure:
            return failure_response(failure)
        return await _results(job, body.get("timeoutMs"), "bigquery#queryResponse")

    async def put_table(self, request: Request) -> Response:
        """tables.insert, patch, update: passed on; the partition-filter flag and the expiration
        time remembered."""
        raw = await request.body()
        response, answer = await self.front.upstream.forward_read(request, raw)
        body, answered = _json(raw), _json(answer or b"")
        if response.status_code == 200 and body is not None and answered is not None:
            p = request.path_params
            self.front.partition_filters.remember(p["project"], p["dataset"], body, answered)
            self.front.expiry.remember(p["project"], p["dataset"], body, answered)
        return response

    async def table(self, request: Request) -> Response:
        """tables.get shows the flag and the expiration time (an expired table is deleted: 404);
        tables.delete forgets both."""
        p = request.path_params
        project, dataset, table = p["project"], p["dataset"], p["table"]
        if request.method == "DELETE":
            self.front.partition_filters.forget(project, dataset, table)
            self.front.expiry.forget(project, dataset, table)
            return await self.forward(request)
        if request.method != "GET":
            return await self.put_table(request)
        if self.front.expiry.expired(project, dataset, table):
            await self.front.upstream.client.delete(request.url.path)
            self.front.partition_filters.forget(project, dataset, table)
            self.front.expiry.forget(project, dataset, table)
            return failure_response(JobFailure("notFound", f"Not found: Table {project}:{dataset}.{table}"))
        response, answer = await self.front.upstream.forward_read(request, b"")
        answered = _json(answer or b"")
        if response.status_code != 200 or answered is None:
            return response
        shown = self.front.partition_filters.shown(project, dataset, table, answered)
        return JSONResponse(self.front.expiry.shown(project, dataset, table, shown))

    async def cancel(self, request: Request) -> Response:
        job = self._job(request)
        if job is None:
            return await self.forward(request)
        return JSONResponse({"kind": "bigquery#jobCancelResponse", "job": job.snapshot()})

    async def hold(self, request: Request) -> Response:
        body = _json(await request.body()) or {}
        prefix = str(body.get("prefix") or "")
        if not prefix:
            return JSONResponse({"error": 'expected {"prefix": "..."}'}, status_code=400)
        self.front.holds.add(prefix)
        return JSONResponse({"held": self.front.holds.held()})

    async def release(self, request: Request) -> Response:
        found = self.front.holds.release(request.path_params["prefix"])
        return JSONResponse({"released": found, "held": self.front.holds.held()}, status_code=200 if found else 404)

    async def holds(self, _request: Request) -> Response:
        return JSONResponse({"held": self.front.holds.held()})

    async def plan_failure(self, request: Request) -> Response:
        try:
            self.front.failures.plan(_json(await request.body()) or {})
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"planned": self.front.failures.planned()})

    async def failures(self, _request: Request) -> Response:
        return JSONResponse({"planned": self.front.failures.planned()})

    async def delete(self, request: Request) -> Response:
        if self.front.jobs.delete(request.path_params["project"], request.path_params["job_id"]):
            return Response(status_code=204)
        return await self.forward(request)


def build_app(config: FrontConfig) -> Starlette:
    """The ASGI app; ``app.state.front`` is the :class:`~devstack.bqfront.server.Front`."""
    front = Front(config)
    h = Handlers(front)
    routes = [
        Route(JOBS, h.insert, methods=["POST"]),
        Route(JOBS + "/{job_id}", h.get_job, methods=["GET"]),
        Route(JOBS + "/{job_id}/cancel", h.cancel, methods=["POST"]),
        Route(JOBS + "/{job_id}/delete", h.delete, methods=["DELETE"]),
        Route(QUERIES, h.jobs_query, methods=["POST"]),
        Route(QUERIES + "/{job_id}", h.query_results, methods=["GET"]),
        Route(TABLES, h.put_table, methods=["POST"]),
        Route(TABLES + "/{table}", h.table, methods=["GET", "PATCH", "PUT", "DELETE"]),
        Route("/_bqfront/holds", h.hold, methods=["POST"]),
        Route("/_bqfront/holds", h.holds, methods=["GET"]),
        Route("/_bqfront/holds/{prefix}", h.release, methods=["DELETE"]),
        Route("/_bqfront/failures", h.plan_failure, methods=["POST"]),
        Route("/_bqfront/failures", h.failures, methods=["GET"]),
        Route("/{path:path}", h.forward, methods=ALL_METHODS),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await front.upstream.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.front = front
    return app


def failure_response(failure: JobFailure) -> JSONResponse:
    return JSONResponse(error_body(failure), status_code=failure.http_status)


async def _results(job: Job, timeout_ms: Any, kind: str = "bigquery#getQueryResultsResponse") -> Response:
    """getQueryResults (or jobs.query) of an EXPORT DATA job: waits until DONE (bounded), then no
    rows, or the job's error with the HTTP status of its reason."""
    wait_s = MAX_WAIT_S if timeout_ms in (None, "") else min(MAX_WAIT_S, max(0.0, float(timeout_ms) / 1000))
    await run_in_threadpool(job.done.wait, wait_s)
    resource = job.snapshot()
    error = resource["status"].get("errorResult")
    if error:
        return failure_response(JobFailure(error["reason"], error["message"], error.get("location")))
    return JSONResponse(
        {
            "kind": kind,
            "jobReference": resource["jobReference"],
            "jobComplete": resource["status"]["state"] == "DONE",
            "totalBytesProcessed": resource["statistics"].get("totalBytesProcessed", "0"),
            "cacheHit": False,
        }
    )


def _dry_run(project: str, body: dict[str, Any], kind: str, base_url: str) -> dict[str, Any]:
    """A dry run is answered at once, DONE, without running anything."""
    resource = new_resource(project, body, kind, base_url)
    resource["status"] = {"state": "DONE"}
    if kind == "QUERY":
        resource["statistics"].update({"totalBytesProcessed": "0", "query": {"statementType": "EXPORT_DATA"}})
    return resource


def _running(project: str, body: dict[str, Any], base_url: str) -> dict[str, Any]:
    """What jobs.get shows of a job bqemulator is still running inside its insert."""
    config = body.get("configuration") or {}
    kind = next((k.upper() for k in ("query", "load", "copy", "extract") if k in config), "QUERY")
    resource = new_resource(project, body, kind, base_url)
    resource["status"] = {"state": "RUNNING"}
    resource["statistics"]["startTime"] = resource["statistics"]["creationTime"]
    return resource


def _answer_key(query: str) -> str:
    """A getQueryResults query string without what cannot change a finished job's answer (how
    long to wait), its parameters in one order."""
    kept = sorted((k, v) for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True) if k != "timeoutMs")
    return urllib.parse.urlencode(kept)


def _done_job(status: int, answer: bytes | None) -> dict[str, Any] | None:
    """The job resource of a jobs.insert or jobs.get answer when it says the job is DONE, else None."""
    if status != 200 or not answer:
        return None
    job = _json(answer)
    if job is None or (job.get("status") or {}).get("state") != "DONE" or not job.get("jobReference"):
        return None
    return job


def _json(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw or b"null")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
