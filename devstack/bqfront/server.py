"""The BigQuery front: an HTTP server before bqemulator that runs export jobs itself.

Every request goes to bqemulator unchanged (:mod:`devstack.bqfront.proxy`) except:

- ``POST /bigquery/v2/projects/{p}/jobs`` (jobs.insert) whose configuration is ``extract``,
  or ``query`` with an ``EXPORT DATA OPTIONS(...) AS ...`` statement: run here, in a thread;
- ``POST .../queries`` (jobs.query) with an EXPORT DATA statement: the same, answered like jobs.query;
- ``GET .../jobs/{id}``, ``GET .../queries/{id}`` (getQueryResults), ``POST .../jobs/{id}/cancel``,
  ``DELETE .../jobs/{id}/delete`` for those jobs; any other job id goes to bqemulator.

Rows come from bqemulator (google-cloud-bigquery against its REST port, its Storage Read API
over gRPC for tables); files go to the GCS emulator through google-cloud-storage
(``STORAGE_EMULATOR_HOST`` must be set in the front's environment).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from devstack.bqfront import settings as spec_of
from devstack.bqfront.errors import JobFailure, error_body
from devstack.bqfront.jobs import Job, JobStore, new_resource
from devstack.bqfront.proxy import Upstream
from devstack.bqfront.runner import write_export
from devstack.bqfront.source import Reader
from devstack.bqfront.statement import is_export_data, parse_export_data

MAX_WAIT_S = 10.0  # getQueryResults / jobs.query hold the request at most this long (BigQuery: 10 s default)
JOBS = "/bigquery/v2/projects/{project}/jobs"
QUERIES = "/bigquery/v2/projects/{project}/queries"


@dataclass(frozen=True)
class FrontConfig:
    upstream: str  # bqemulator's REST base URL
    grpc: str | None  # bqemulator's gRPC host:port (Storage Read API), or None for REST reads
    shard_size_bytes: int  # target file size for wildcard URIs
    public_url: str  # this server's base URL (selfLink)


class Front:
    """State of one front: its jobs, the upstream, and how jobs reach bqemulator and GCS."""

    def __init__(self, config: FrontConfig) -> None:
        self.config = config
        self.jobs = JobStore()
        self.upstream = Upstream(config.upstream)

    # -- the work of a job (runs in the job's thread)

    def _clients(self, project: str) -> tuple[Reader, Any]:
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery, storage

        bq = bigquery.Client(
            project=project,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=self.config.upstream),
        )
        return Reader(bq, self.config.grpc), storage.Client(project=project, credentials=AnonymousCredentials())

    def extract(self, job: Job) -> dict[str, Any]:
        """An extract job: sourceTable → destinationUris."""
        project = job.resource["jobReference"]["projectId"]
        config = job.resource["configuration"]["extract"]
        spec = spec_of.from_extract(config)
        if "sourceTable" not in config:
            raise JobFailure("invalid", "The local BigQuery front extracts tables only (no sourceModel)")
        reader, storage = self._clients(project)
        rows = reader.table(config["sourceTable"], project)
        written = write_export(spec, rows, storage, self.config.shard_size_bytes, job.job_id)
        return {"extract": {"destinationUriFileCounts": [str(written.files)], "inputBytes": str(written.bytes)}}

    def export_data(self, job: Job) -> dict[str, Any]:
        """An EXPORT DATA query job: its SELECT runs on bqemulator, the rows go to ``uri``."""
        project = job.resource["jobReference"]["projectId"]
        query = job.resource["configuration"]["query"]
        statement = parse_export_data(query.get("query", ""))
        assert statement is not None  # inserted as EXPORT DATA
        spec = spec_of.from_options(statement.options)
        reader, storage = self._clients(project)
        rows = reader.query(statement.query, query)
        written = write_export(spec, rows, storage, self.config.shard_size_bytes, job.job_id)
        exported = {"fileCount": str(written.files), "rowCount": str(written.rows)}
        return {
            "totalBytesProcessed": str(written.bytes),
            "query": {
                "statementType": "EXPORT_DATA",
                "totalBytesProcessed": str(written.bytes),
                "exportDataStatistics": exported,
            },
        }

    # -- starting jobs

    async def start(self, project: str, body: dict[str, Any], kind: str) -> tuple[Job, dict[str, Any]]:
        """Create and start a job; JobFailure(duplicate) when its id exists here or in bqemulator."""
        resource = new_resource(project, body, kind, self.config.public_url)
        ref = resource["jobReference"]
        if self.jobs.get(project, ref["jobId"]) is None and await self.upstream.has_job(project, ref["jobId"]):
            raise JobFailure("duplicate", f"Already Exists: Job {project}:{ref['location']}.{ref['jobId']}")
        work = self.extract if kind == "EXTRACT" else self.export_data
        return self.jobs.insert(resource, work)


def _kind(body: dict[str, Any]) -> str | None:
    """EXTRACT / QUERY for the jobs this front runs, None for everything bqemulator runs."""
    config = body.get("configuration") or {}
    if config.get("extract"):
        return "EXTRACT"
    if is_export_data(str((config.get("query") or {}).get("query", ""))):
        return "QUERY"
    return None


def failure_response(failure: JobFailure) -> JSONResponse:
    return JSONResponse(error_body(failure), status_code=failure.http_status)


def build_app(config: FrontConfig) -> Starlette:
    """The ASGI app; ``app.state.front`` is the :class:`Front`."""
    front = Front(config)

    async def insert(request: Request) -> Response:
        raw = await request.body()
        body = _json(raw)
        kind = _kind(body) if body is not None else None
        if kind is None:
            return await front.upstream.forward(request, raw)
        project = request.path_params["project"]
        if (body.get("configuration") or {}).get("dryRun"):
            return JSONResponse(_dry_run(project, body, kind, config.public_url))
        try:
            _job, pending = await front.start(project, body, kind)
        except JobFailure as failure:
            return failure_response(failure)
        return JSONResponse(pending)

    async def get_job(request: Request) -> Response:
        job = front.jobs.get(request.path_params["project"], request.path_params["job_id"])
        if job is None:
            return await front.upstream.forward(request, await request.body())
        return JSONResponse(job.snapshot())

    async def query_results(request: Request) -> Response:
        job = front.jobs.get(request.path_params["project"], request.path_params["job_id"])
        if job is None:
            return await front.upstream.forward(request, await request.body())
        return await _results(job, request.query_params.get("timeoutMs"))

    async def jobs_query(request: Request) -> Response:
        raw = await request.body()
        body = _json(raw)
        if body is None or not is_export_data(str(body.get("query", ""))):
            return await front.upstream.forward(request, raw)
        project = request.path_params["project"]
        keep = ("query", "queryParameters", "parameterMode", "defaultDataset", "useLegacySql")
        insert_body = {
            "jobReference": {"jobId": f"bqfront_{uuid.uuid4().hex}", "location": body.get("location")},
            "configuration": {"query": {k: body[k] for k in keep if k in body}},
        }
        try:
            job, _pending = await front.start(project, insert_body, "QUERY")
        except JobFailure as failure:
            return failure_response(failure)
        answer = await _results(job, body.get("timeoutMs"))
        return answer

    async def cancel(request: Request) -> Response:
        job = front.jobs.get(request.path_params["project"], request.path_params["job_id"])
        if job is None:
            return await front.upstream.forward(request, await request.body())
        return JSONResponse({"kind": "bigquery#jobCancelResponse", "job": job.snapshot()})

    async def delete(request: Request) -> Response:
        if front.jobs.delete(request.path_params["project"], request.path_params["job_id"]):
            return Response(status_code=204)
        return await front.upstream.forward(request, await request.body())

    async def anything(request: Request) -> Response:
        return await front.upstream.forward(request, await request.body())

    routes = [
        Route(JOBS, insert, methods=["POST"]),
        Route(JOBS + "/{job_id}", get_job, methods=["GET"]),
        Route(JOBS + "/{job_id}/cancel", cancel, methods=["POST"]),
        Route(JOBS + "/{job_id}/delete", delete, methods=["DELETE"]),
        Route(QUERIES, jobs_query, methods=["POST"]),
        Route(QUERIES + "/{job_id}", query_results, methods=["GET"]),
        Route("/{path:path}", anything, methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await front.upstream.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.front = front
    return app


async def _results(job: Job, timeout_ms: Any) -> Response:
    """getQueryResults of an EXPORT DATA job: waits until DONE (bounded), then no rows or the job's error."""
    wait_s = MAX_WAIT_S if timeout_ms in (None, "") else min(MAX_WAIT_S, max(0.0, float(timeout_ms) / 1000))
    await run_in_threadpool(job.done.wait, wait_s)
    resource = job.snapshot()
    error = resource["status"].get("errorResult")
    if error:
        return failure_response(JobFailure(error["reason"], error["message"], error.get("location")))
    done = resource["status"]["state"] == "DONE"
    return JSONResponse(
        {
            "kind": "bigquery#getQueryResultsResponse",
            "jobReference": resource["jobReference"],
            "jobComplete": done,
            "totalBytesProcessed": resource["statistics"].get("totalBytesProcessed", "0"),
            "cacheHit": False,
        }
    )


def _dry_run(project: str, body: dict[str, Any], kind: str, base_url: str) -> dict[str, Any]:
    resource = new_resource(project, body, kind, base_url)
    resource["status"] = {"state": "DONE"}
    resource["statistics"].update({"totalBytesProcessed": "0", "query": {"statementType": "EXPORT_DATA"}})
    return resource


def _json(raw: bytes) -> dict[str, Any] | None:
    import json

    try:
        value = json.loads(raw or b"null")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
