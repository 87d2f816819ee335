"""The warehouse: one interface over BigQuery for fan_out and export_table.

:class:`Warehouse` is what the stages need: list a dataset's tables (with their type), read a
schema, COUNT(*) a table or a dated query, and export one source to a wildcard GCS URI under a
deterministic job id. :class:`BigQueryWarehouse` runs real extract jobs (query mode: the query
job's result table is extracted). ``OFFSITE_WAREHOUSE=local`` selects
:class:`shared.gcp.local_warehouse.LocalWarehouse`, which does the same against bqemulator and
the GCS emulator (bqemulator cannot extract to GCS; docs/exports.md lists every difference).

Re-attaching: a job id is a function of (run_id, source, step). ``export`` first looks the job
up; a job that exists is waited for instead of started again, so a redelivered message never
starts a second export. A job that fails for a transient backend reason is started again under
``<id>_retry1``, ``<id>_retry2`` (BigQuery never reuses a job id), found the same way later.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from google.api_core import exceptions as gexc

from shared import log
from shared.errors import PermanentError, TransientError
from shared.gcp import clients
from shared.gcp.file_formats import COMPRESSION
from shared.messages import Source
from shared.retry import retry_call

logger = log.get_logger(__name__)

WAREHOUSE_ENV = "OFFSITE_WAREHOUSE"  # "bigquery" (default) or "local"
DATE_PARAMETER = "run_date"
EXPORTABLE_TYPES = ("TABLE",)
TRANSIENT_JOB_REASONS = frozenset(
    {"backendError", "internalError", "jobBackendError", "jobInternalError", "rateLimitExceeded"}
)
MAX_JOB_ATTEMPTS = 3
API_DEADLINE_S = 30.0  # bound on the client library's own retries per call (its default is 600 s)
QUERY_TIMEOUT_S = 120.0
_TRANSIENT = (
    gexc.TooManyRequests,
    gexc.InternalServerError,
    gexc.BadGateway,
    gexc.ServiceUnavailable,
    gexc.GatewayTimeout,
    gexc.DeadlineExceeded,
    gexc.RetryError,
    ConnectionError,
    TimeoutError,
)


# ---- what the stages pass in and get back ----------------------------------------------------


@dataclass(frozen=True)
class TableInfo:
    name: str
    table_type: str  # TABLE, VIEW, MATERIALIZED_VIEW, EXTERNAL, SNAPSHOT, ...

    @property
    def exportable(self) -> bool:
        """Extract jobs read tables only; views and external tables have no storage to extract."""
        return self.table_type in EXPORTABLE_TYPES


@dataclass(frozen=True)
class TableRef:
    project: str
    dataset: str
    table: str

    @property
    def sql(self) -> str:
        for part in (self.project, self.dataset, self.table):
            if "`" in part or "\\" in part:
                raise PermanentError(f"table reference {part!r} contains a backtick or backslash")
        return f"`{self.project}.{self.dataset}.{self.table}`"

    @property
    def label(self) -> str:
        return f"{self.project}.{self.dataset}.{self.table}"


@dataclass(frozen=True)
class DatedQuery:
    """A configured query whose ``{date}`` placeholders become the DATE parameter ``@run_date``.

    The date travels as a typed query parameter, never as text pasted into the SQL.
    """

    name: str
    sql: str
    date: dt.date

    def parameterized(self) -> tuple[str, list[Any]]:
        from google.cloud import bigquery

        if "{date}" not in self.sql:
            raise PermanentError(f"exports.{self.name}.sql: has no {{date}} placeholder")
        return self.sql.replace("{date}", f"@{DATE_PARAMETER}"), [
            bigquery.ScalarQueryParameter(DATE_PARAMETER, "DATE", self.date)
        ]

    @property
    def label(self) -> str:
        return f"export:{self.name}"


ExportSource = TableRef | DatedQuery


@dataclass(frozen=True)
class ExportJob:
    """One export: ``source`` → gs://bucket/prefix + file_pattern (one ``*``: the shard number)."""

    job_id: str
    source: ExportSource
    bucket: str
    prefix: str
    file_pattern: str
    format: str
    deadline: float  # time.monotonic() by which to give up waiting (TransientError)

    @property
    def destination_uri(self) -> str:
        return f"gs://{self.bucket}/{self.prefix}{self.file_pattern}"


@dataclass(frozen=True)
class ExportResult:
    job_id: str
    row_count: int  # COUNT(*) of what was exported
    schema: list[dict[str, Any]]
    file_count: int | None  # files the job reports having written
    sha1: dict[str, str] = field(default_factory=dict)  # object name → hex sha1, where known
    location: str | None = None


class Warehouse(Protocol):
    project: str

    def list_tables(self, dataset: str) -> list[TableInfo]: ...
    def table_schema(self, table: TableRef) -> list[dict[str, Any]]: ...
    def count_rows(self, source: ExportSource) -> int: ...
    def export(self, job: ExportJob) -> ExportResult: ...


def warehouse(shard_size_bytes: int | None = None) -> Warehouse:
    """The process's warehouse: real BigQuery, or the local one when OFFSITE_WAREHOUSE=local."""
    kind = os.environ.get(WAREHOUSE_ENV, "bigquery").strip().lower()
    if kind == "local":
        from shared.gcp.local_warehouse import LocalWarehouse

        return LocalWarehouse(shard_size_bytes=shard_size_bytes)
    if kind != "bigquery":
        raise PermanentError(f"{WAREHOUSE_ENV}: {kind!r} is not 'bigquery' or 'local'")
    return BigQueryWarehouse()


def job_id_for(run_id: str, source: Source, step: str = "export") -> str:
    """Deterministic BigQuery job id for one step of one source in one run (readable + hashed)."""
    readable = re.sub(r"[^A-Za-z0-9_]", "_", source.label)[:120]
    digest = hashlib.sha1(f"{run_id}|{source.project}|{source.label}".encode()).hexdigest()[:8]
    return f"offsite_{run_id}_{readable}_{digest}_{step}"


# ---- errors ----------------------------------------------------------------------------------


def _reason(exc: gexc.GoogleAPICallError) -> str:
    errors = getattr(exc, "errors", None) or []
    return str(errors[0].get("reason", "")) if errors and isinstance(errors[0], dict) else ""


@contextmanager
def mapped_errors(what: str) -> Iterator[None]:
    """google.api_core exceptions → TransientError / PermanentError carrying BigQuery's reason."""
    try:
        yield
    except gexc.NotFound as exc:
        raise PermanentError(f"{what}: not found: {exc.message}") from None
    except gexc.Forbidden as exc:
        # BigQuery answers 403 for rate limits too; only those are worth retrying.
        if _reason(exc) in ("rateLimitExceeded", "quotaExceeded"):
            raise TransientError(f"{what}: {_reason(exc)}: {exc.message}", retry_after=30) from exc
        raise PermanentError(f"{what}: access denied: {exc.message}") from None
    except _TRANSIENT as exc:
        raise TransientError(f"{what}: {exc.__class__.__name__}: {exc}") from exc
    except (gexc.BadRequest, gexc.Unauthorized) as exc:
        raise PermanentError(f"{what}: {_reason(exc) or exc.__class__.__name__}: {exc.message}") from None


def api_retry() -> Any:
    from google.cloud.bigquery import DEFAULT_RETRY

    return DEFAULT_RETRY.with_deadline(API_DEADLINE_S)


def _call(fn: Callable[[], Any], what: str) -> Any:
    def once() -> Any:
        with mapped_errors(what):
            return fn()

    return retry_call(once, what, attempts=3)


# ---- real BigQuery ---------------------------------------------------------------------------


class BigQueryWarehouse:
    """google-cloud-bigquery against BigQuery (or, for everything but export, bqemulator)."""

    def __init__(self, client: Any | None = None, project: str | None = None) -> None:
        self.client = client if client is not None else clients.bigquery_client()
        self.project = project or self.client.project

    # -- metadata and counts

    def list_tables(self, dataset: str) -> list[TableInfo]:
        what = f"listing tables of {self.project}.{dataset}"
        # Asked first because bqemulator lists a missing dataset as empty; BigQuery says 404.
        _call(lambda: self.client.get_dataset(f"{self.project}.{dataset}", retry=api_retry()), what)
        items = _call(lambda: list(self.client.list_tables(f"{self.project}.{dataset}", retry=api_retry())), what)
        return sorted((TableInfo(t.table_id, str(t.table_type or "TABLE")) for t in items), key=lambda t: t.name)

    def get_table(self, table: TableRef) -> Any:
        return _call(lambda: self.client.get_table(table.label, retry=api_retry()), f"reading table {table.label}")

    def table_schema(self, table: TableRef) -> list[dict[str, Any]]:
        return [f.to_api_repr() for f in self.get_table(table).schema]

    def count_rows(self, source: ExportSource) -> int:
        if isinstance(source, TableRef):
            return self._scalar(f"SELECT COUNT(*) AS n FROM {source.sql}", [], f"counting rows of {source.label}")
        sql, params = source.parameterized()
        return self._scalar(
            f"SELECT COUNT(*) AS n FROM ({sql}) AS exported", params, f"counting rows of {source.label}"
        )

    def _scalar(self, sql: str, params: list[Any], what: str, location: str | None = None) -> int:
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(query_parameters=params)

        def run() -> int:
            job = self.client.query(sql, job_config=config, location=location, retry=api_retry(), job_retry=None)
            rows = list(job.result(retry=api_retry(), timeout=QUERY_TIMEOUT_S))
            return int(rows[0][0])

        return int(_call(run, what))

    # -- export

    def export(self, job: ExportJob) -> ExportResult:
        """Run (or re-attach to) the extract; wait until ``job.deadline``; raise on failure."""
        from google.cloud import bigquery

        if isinstance(job.source, TableRef):
            table = self.get_table(job.source)
            location = table.location
            rows_at: Callable[[Any], int] = lambda extract: self._count_at(job.source, extract, location)
        else:
            sql, params = job.source.parameterized()
            config = bigquery.QueryJobConfig(query_parameters=params)
            location = self._query_location(sql, params, job.source.label)
            query = self.attach_or_start(
                f"{job.job_id}_query",
                lambda jid: self.client.query(
                    sql, job_config=config, job_id=jid, location=location, retry=api_retry(), job_retry=None
                ),
                location,
                job.deadline,
                job.source.label,
            )
            table = _call(
                lambda: self.client.get_table(query.destination, retry=api_retry()),
                f"reading the result of {query.job_id}",
            )
            result_ref = TableRef(table.project, table.dataset_id, table.table_id)
            rows_at = lambda _extract: self.count_rows(result_ref)

        extract_config = extract_job_config(job.format)
        extract = self.attach_or_start(
            job.job_id,
            lambda jid: self.client.extract_table(
                table.reference,
                job.destination_uri,
                job_id=jid,
                location=location,
                job_config=extract_config,
                retry=api_retry(),
            ),
            location,
            job.deadline,
            job.source.label,
        )
        counts = list(extract.destination_uri_file_counts or [])
        return ExportResult(
            job_id=extract.job_id,
            row_count=rows_at(extract),
            schema=[f.to_api_repr() for f in table.schema],
            file_count=sum(counts) if counts else None,
            location=location,
        )

    def _query_location(self, sql: str, params: list[Any], label: str) -> str | None:
        """A dry run tells where the query runs; jobs outside US/EU are only found with their location."""
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(query_parameters=params, dry_run=True, use_query_cache=False)
        dry = _call(
            lambda: self.client.query(sql, job_config=config, retry=api_retry(), job_retry=None),
            f"checking the query of {label}",
        )
        return dry.location

    def _count_at(self, table: TableRef, extract: Any, location: str | None) -> int:
        """COUNT(*) as of the extract's start (time travel), so later inserts do not skew it."""
        from google.cloud import bigquery

        if extract.started is None:
            return self.count_rows(table)
        params = [bigquery.ScalarQueryParameter("exported_at", "TIMESTAMP", extract.started)]
        try:
            return self._scalar(
                f"SELECT COUNT(*) AS n FROM {table.sql} FOR SYSTEM_TIME AS OF @exported_at",
                params,
                f"counting {table.label}",
                location,
            )
        except PermanentError as exc:  # e.g. time travel not available for this table
            logger.warning("time-travel count failed; counting the live table", table=table.label, error=str(exc))
            return self.count_rows(table)

    def _get_job(self, job_id: str, location: str | None) -> Any | None:
        def lookup() -> Any | None:
            try:
                return self.client.get_job(job_id, location=location, retry=api_retry())
            except gexc.NotFound:
                return None

        return _call(lookup, f"looking up job {job_id}")

    def attach_or_start(
        self, base_id: str, start: Callable[[str], Any], location: str | None, deadline: float, label: str
    ) -> Any:
        """The finished job ``base_id`` (or its ``_retryN`` successor), started with ``start(job_id)`` only
        if it does not exist yet. Waits until ``deadline`` (TransientError past it); a failed job is a
        PermanentError with BigQuery's reason, after up to MAX_JOB_ATTEMPTS for transient reasons."""
        for attempt in range(MAX_JOB_ATTEMPTS):
            job_id = base_id if attempt == 0 else f"{base_id}_retry{attempt}"
            job = self._get_job(job_id, location)
            if job is None:
                try:
                    job = _call(lambda jid=job_id: start(jid), f"starting job {job_id} for {label}")
                    logger.info("job started", job_id=job_id, source=label)
                except gexc.Conflict:  # a concurrent delivery started it between our lookup and insert
                    job = self._get_job(job_id, location)
            else:
                logger.info("re-attached to existing job", job_id=job_id, state=job.state, source=label)
            job = self._wait(job, deadline)
            error = job.error_result
            if not error:
                return job
            reason, message = error.get("reason", "unknown"), error.get("message", "")
            if reason in TRANSIENT_JOB_REASONS and attempt + 1 < MAX_JOB_ATTEMPTS:
                logger.warning("job failed transiently; starting the next attempt", job_id=job_id, reason=reason)
                continue
            raise PermanentError(f"BigQuery job {job_id} for {label} failed: {reason}: {message}")
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, job: Any, deadline: float) -> Any:
        """Poll until DONE; past ``deadline`` raise TransientError so the redelivery re-attaches."""
        delay = 0.5
        while True:
            _call(lambda: job.reload(retry=api_retry()), f"polling job {job.job_id}")
            if job.state == "DONE":
                return job
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TransientError(
                    f"BigQuery job {job.job_id} is still {job.state} at the end of this attempt's time budget; "
                    "the redelivery re-attaches to it",
                    retry_after=30,
                )
            time.sleep(min(delay, remaining))
            delay = min(delay * 1.5, 10.0)


def extract_job_config(fmt: str) -> Any:
    """Extract settings per format: Parquet SNAPPY, Avro DEFLATE + logical types, CSV/NDJSON GZIP."""
    from google.cloud import bigquery

    config = bigquery.ExtractJobConfig(destination_format=fmt, compression=COMPRESSION[fmt])
    if fmt == "CSV":
        config.print_header = True
    if fmt == "AVRO":
        config.use_avro_logical_types = True
    return config
