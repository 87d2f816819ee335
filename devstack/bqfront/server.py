"""The BigQuery front's state and the work of its two job kinds (extract, EXPORT DATA).

The HTTP side is :mod:`devstack.bqfront.routes`. Rows come from bqemulator
(google-cloud-bigquery against its REST port, its Storage Read API over gRPC for tables);
files go to the GCS emulator through google-cloud-storage (``STORAGE_EMULATOR_HOST`` must be
set in the front's environment). Every failure of a job is a JobFailure (see errors.py).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.bqfront import settings as spec_of
from devstack.bqfront.audit import AuditLog, Holds
from devstack.bqfront.errors import JobFailure, duplicate_job
from devstack.bqfront.expiry import TableExpiry
from devstack.bqfront.failing import PlannedFailures
from devstack.bqfront.finished import FinishedJobs
from devstack.bqfront.jobs import DEFAULT_MAX_RUNNING, Job, JobStore, new_resource
from devstack.bqfront.loads import run_load
from devstack.bqfront.partition_filter import PartitionFilters
from devstack.bqfront.proxy import Upstream
from devstack.bqfront.runner import Written, write_export
from devstack.bqfront.settings import ExportSpec
from devstack.bqfront.source import Reader, Rows
from devstack.bqfront.statement import is_export_data, parse_export_data


@dataclass(frozen=True)
class FrontConfig:
    upstream: str  # bqemulator's REST base URL
    grpc: str | None  # bqemulator's gRPC host:port (Storage Read API), or None for REST reads
    shard_size_bytes: int  # target file size for wildcard URIs
    public_url: str  # this server's base URL (selfLink)
    audit_topic: str | None = None  # Pub/Sub topic (emulator) receiving each finished job's audit-log entry
    spool_dir: Path | None = None  # where shards are spooled before upload (None: the system's temp dir)
    max_running_jobs: int = DEFAULT_MAX_RUNNING  # the front's jobs RUNNING at once; the rest wait PENDING


class Front:
    """State of one front: its jobs, the upstream, and how jobs reach bqemulator and GCS."""

    def __init__(self, config: FrontConfig) -> None:
        self.config = config
        self.audit = AuditLog(config.audit_topic)
        self.holds = Holds()
        self.failures = PlannedFailures()  # test control: a job that fails after writing its files
        self.jobs = JobStore(on_done=self.audit.emit, max_running=config.max_running_jobs)
        self.upstream = Upstream(config.upstream)
        self.finished = FinishedJobs()  # bqemulator's DONE jobs, as the front passed them on
        self.partition_filters = PartitionFilters()  # tables.requirePartitionFilter, which bqemulator drops
        self.expiry = TableExpiry()  # tables.expirationTime, which bqemulator drops
        self._clients_by_project: dict[str, tuple[Reader, Any]] = {}
        self._clients_lock = threading.Lock()

    # -- the work of a job (runs in the job's thread)

    def _clients(self, project: str) -> tuple[Reader, Any]:
        """The project's clients, made once and shared by its jobs (thread-safe): a gRPC channel
        per job cost each job its set-up and left the old channels' buffers behind."""
        with self._clients_lock:
            if project not in self._clients_by_project:
                self._clients_by_project[project] = self._new_clients(project)
            return self._clients_by_project[project]

    def _new_clients(self, project: str) -> tuple[Reader, Any]:
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
        """An extract job: sourceTable → destinationUris, in the table's columns as the job started
        (BigQuery exports the snapshot of its start: a column added while it runs is not in the files)."""
        project = job.resource["jobReference"]["projectId"]
        config = job.resource["configuration"]["extract"]
        spec = spec_of.from_extract(config)
        if "sourceTable" not in config:
            raise JobFailure("invalid", "The local BigQuery front extracts tables only (no sourceModel)")
        reader, storage = self._clients(project)
        started_with = reader.columns(config["sourceTable"], project)
        self.holds.wait(job.job_id)
        rows = reader.table(config["sourceTable"], project, columns=started_with)
        written = self._write(job, spec, rows, storage)
        return {"extract": {"destinationUriFileCounts": [str(written.files)], "inputBytes": str(written.bytes)}}

    def export_data(self, job: Job) -> dict[str, Any]:
        """An EXPORT DATA query job: its SELECT runs on bqemulator, the rows go to ``uri``."""
        self.holds.wait(job.job_id)
        project = job.resource["jobReference"]["projectId"]
        query = job.resource["configuration"]["query"]
        statement = parse_export_data(query.get("query", ""))
        assert statement is not None  # inserted as EXPORT DATA
        spec = spec_of.from_options(statement.options)
        reader, storage = self._clients(project)
        self.partition_filters.check(project, statement.query, query.get("defaultDataset"))
        rows = reader.query(statement.query, query)
        written = self._write(job, spec, rows, storage)
        exported = {"fileCount": str(written.files), "rowCount": str(written.rows)}
        return {
            "totalBytesProcessed": str(written.bytes),
            "query": {
                "statementType": "EXPORT_DATA",
                "totalBytesProcessed": str(written.bytes),
                "exportDataStatistics": exported,
            },
        }

    def _write(self, job: Job, spec: ExportSpec, rows: Rows, storage: Any) -> Written:
        """The job's files; then its planned failure, if a test planned one (devstack/bqfront/failing.py)."""
        planned = self.failures.take(job.job_id)
        shard_bytes = planned.shard_bytes if planned and planned.shard_bytes else self.config.shard_size_bytes
        written = write_export(spec, rows, storage, shard_bytes, job.job_id, self.config.spool_dir)
        if planned is not None:
            raise JobFailure(planned.reason, planned.message)
        return written

    def load(self, job: Job) -> dict[str, Any]:
        """A load job from gs:// URIs: the objects from fake-gcs-server, loaded by bqemulator."""
        self.holds.wait(job.job_id)
        project = job.resource["jobReference"]["projectId"]
        reader, storage = self._clients(project)
        return run_load(job.resource["configuration"]["load"], project, storage, reader.client)

    # -- starting jobs

    async def id_taken(self, project: str, job_id: str) -> bool:
        """Whether a job with this id exists, among the front's jobs or bqemulator's."""
        if self.jobs.get(project, job_id) is not None or self.finished.job(project, job_id) is not None:
            return True
        return await self.upstream.has_job(project, job_id)

    async def start(self, project: str, body: dict[str, Any], kind: str) -> tuple[Job, dict[str, Any]]:
        """Create and start a job; JobFailure(duplicate) when its id exists here or in bqemulator."""
        resource = new_resource(project, body, kind, self.config.public_url)
        ref = resource["jobReference"]
        if await self.id_taken(project, ref["jobId"]):
            raise duplicate_job(project, ref["location"], ref["jobId"])
        work = {"EXTRACT": self.extract, "LOAD": self.load}.get(kind, self.export_data)
        return self.jobs.insert(resource, work)


def job_kind(body: dict[str, Any]) -> str | None:
    """EXTRACT / LOAD (from gs://) / QUERY for the jobs this front runs, None for everything bqemulator runs."""
    config = body.get("configuration") or {}
    if config.get("extract"):
        return "EXTRACT"
    if any(str(uri).startswith("gs://") for uri in (config.get("load") or {}).get("sourceUris") or []):
        return "LOAD"
    if is_export_data(str((config.get("query") or {}).get("query", ""))):
        return "QUERY"
    return None
