"""The warehouse: one interface over BigQuery for fan_out and export_table.

:class:`Warehouse` is what the stages need: list a dataset's tables (with their type), read a
schema, and export one source to a wildcard GCS URI under a deterministic job id (its rows
counted by a query job under a deterministic id too, when BigQuery does not say). :class:`BigQueryWarehouse` is the only implementation: tables are
exported by an extract job, dated queries by ONE query job running
``EXPORT DATA OPTIONS(uri=…, format=…, compression=…, overwrite=true, header=true) AS <query>``
(no temporary result table, so the response-size limit of query results cannot apply). The
local stack runs the same code against devstack's BigQuery front (docs/bqfront.md).

Job ids are a function of (run_id, source, run folder, step) (``job_id_for``): the folder holds the
date, so a run id reused for another day is another job. :mod:`shared.gcp.bq_jobs` re-attaches a
redelivered export to its job instead of starting a second one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared import log, sql_date
from shared.errors import PermanentError
from shared.gcp import bq_jobs, clients, fingerprint_job, job_schema, partitions
from shared.gcp.bq_jobs import api_retry, call
from shared.gcp.export_config import destination_of, export_data_sql, extract_job_config
from shared.gcp.job_schema import SchemaStore
from shared.messages import Source

logger = log.get_logger(__name__)

DATE_PARAMETER = sql_date.PARAMETER
EXPORTABLE_TYPES = ("TABLE",)

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
    """A configured query and the day it exports; :mod:`shared.sql_date` renders its ``{date}``s.

    ``{date}`` as an expression becomes the DATE parameter ``@run_date``; inside a string literal
    the date's text (``'{date}'`` compares as the date against DATE and STRING columns); inside a
    table name ``YYYYMMDD``. Only digits and ``-`` from a ``datetime.date`` become SQL text.
    """

    name: str
    sql: str
    date: dt.date
    snapshot: bool = False  # the query reads no date (exports.NAME.snapshot): the date only names the files

    def parameterized(self) -> tuple[str, list[Any]]:
        from google.cloud import bigquery

        if (sql_date.PLACEHOLDER in self.sql) == self.snapshot:
            expected = "no {date} (snapshot: true)" if self.snapshot else "a {date} placeholder"
            raise PermanentError(f"exports.{self.name}.sql: expected {expected}")
        try:
            sql, uses_parameter = sql_date.render(self.sql, self.date)
        except sql_date.SqlDateError as exc:
            raise PermanentError(f"exports.{self.name}.sql: {exc}") from None
        params = [bigquery.ScalarQueryParameter(DATE_PARAMETER, "DATE", self.date)] if uses_parameter else []
        return sql_date.without_terminator(sql), params

    @property
    def label(self) -> str:
        return f"export:{self.name}"


def as_subquery(sql: str) -> str:
    """``sql`` (without its terminator, ``sql_date.without_terminator``) as a FROM item."""
    return f"(\n{sql}\n) AS exported"


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
    deadline: float  # time.monotonic() by which to give up waiting (bq_jobs.JobPending)
    start: bool = True  # False: never start attempt 0, only its _retryN successors (the finalize sweep)
    schemas: SchemaStore | None = None  # keeps the schema each job starts with (shared.gcp.job_schema)
    # Removes the data files of the destination created up to the given instant: a failed
    # attempt's, before its _retryN successor (same destination) writes its own.
    clear_leftovers: Callable[[dt.datetime], None] | None = None

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
    fingerprint: dict[str, Any] | None = None  # shared.gcp.fingerprint, on what was exported; None: unknown
    created: dt.datetime | None = None  # when the job was created: a _retryN's files are all newer


class Warehouse(Protocol):
    project: str

    def list_tables(self, dataset: str) -> list[TableInfo]: ...
    def table_schema(self, table: TableRef) -> list[dict[str, Any]]: ...
    def export(self, job: ExportJob) -> ExportResult: ...
    def export_destination(self, job_id: str, location: str | None) -> str | None: ...


def warehouse() -> Warehouse:
    """The process's warehouse: BigQuery through google-cloud-bigquery (its endpoint from the environment)."""
    return BigQueryWarehouse()


def job_id_for(run_id: str, source: Source, step: str = "export", *, folder: str = "") -> str:
    """Deterministic BigQuery job id for one step of one source in one run (readable + hashed).

    ``folder`` is the run folder the job writes to (``RunFolder.prefix``, its date included): the
    same run id reused for another day must be another job, not a re-attach to the first day's
    (whose files are in the other folder)."""
    readable = re.sub(r"[^A-Za-z0-9_]", "_", source.label)[:120]
    scope = f"{run_id}|{source.project}|{source.label}" + (f"|{folder}" if folder else "")
    digest = hashlib.sha1(scope.encode()).hexdigest()[:8]
    return f"offsite_{run_id}_{readable}_{digest}_{step}"


# ---- real BigQuery ---------------------------------------------------------------------------


class BigQueryWarehouse:
    """google-cloud-bigquery against BigQuery (or, for everything but export, bqemulator)."""

    def __init__(self, client: Any | None = None, project: str | None = None) -> None:
        self.client = client if client is not None else clients.bigquery_client()
        self.project = project or self.client.project

    # -- metadata

    def list_tables(self, dataset: str) -> list[TableInfo]:
        what = f"listing tables of {self.project}.{dataset}"
        # Asked first because bqemulator lists a missing dataset as empty; BigQuery says 404.
        call(lambda: self.client.get_dataset(f"{self.project}.{dataset}", retry=api_retry()), what)
        items = call(lambda: list(self.client.list_tables(f"{self.project}.{dataset}", retry=api_retry())), what)
        return sorted((TableInfo(t.table_id, str(t.table_type or "TABLE")) for t in items), key=lambda t: t.name)

    def get_table(self, table: TableRef) -> Any:
        return call(lambda: self.client.get_table(table.label, retry=api_retry()), f"reading table {table.label}")

    def table_schema(self, table: TableRef) -> list[dict[str, Any]]:
        return [f.to_api_repr() for f in self.get_table(table).schema]

    # -- export

    def export(self, job: ExportJob) -> ExportResult:
        """Run (or re-attach to) the export job; wait until ``job.deadline``; raise on failure."""
        if isinstance(job.source, TableRef):
            return self._export_table(job, job.source)
        return self._export_query(job, job.source)

    def _export_table(self, job: ExportJob, source: TableRef) -> ExportResult:
        """An extract job of the table; rows by COUNT(*) as of the job's start."""
        table = self.get_table(source)
        location = table.location

        def start(jid: str) -> Any:
            # The schema as the job starts: read again for a _retryN attempt, started later.
            now = table if jid == job.job_id else self.get_table(source)
            config = extract_job_config(job.format)
            config.labels = job_schema.labels([f.to_api_repr() for f in now.schema], job.schemas)
            return self.client.extract_table(
                now.reference, job.destination_uri, job_id=jid, location=location, job_config=config, retry=api_retry()
            )

        extract = self._attach_or_start(job, start, location, source.label)
        counts = list(extract.destination_uri_file_counts or [])
        schema = job_schema.of_job(extract, [f.to_api_repr() for f in table.schema], job.schemas, source.label)
        where = partitions.every_row(table)
        fingerprint = self._fingerprint_at(source, where, extract, schema, location, job)
        rows = fingerprint["row_count"] if fingerprint else self._count_at(source, where, extract, location, job)
        return ExportResult(
            job_id=extract.job_id,
            row_count=rows,
            schema=schema,
            file_count=sum(counts) if counts else None,
            location=location,
            fingerprint=fingerprint,
            created=extract.created,
        )

    def _export_query(self, job: ExportJob, source: DatedQuery) -> ExportResult:
        """ONE query job ``EXPORT DATA … AS <query>``; rows and files from its exportDataStatistics."""
        from google.cloud import bigquery

        sql, params = source.parameterized()
        dry = self._dry_run(sql, params, source.label)  # where it runs, and the schema of what it exports
        statement = export_data_sql(job.destination_uri, job.format, sql)

        def start(jid: str) -> Any:
            now = dry if jid == job.job_id else self._dry_run(sql, params, source.label)
            config = bigquery.QueryJobConfig(
                query_parameters=params,
                labels=job_schema.labels([f.to_api_repr() for f in now.schema or []], job.schemas),
            )
            return self.client.query(
                statement, job_config=config, job_id=jid, location=dry.location, retry=api_retry(), job_retry=None
            )

        query = self._attach_or_start(job, start, dry.location, source.label)
        # google-cloud-bigquery 3.47 has no accessor for statistics.query.exportDataStatistics.
        stats = query._properties.get("statistics", {}).get("query", {}).get("exportDataStatistics", {})
        rows = stats.get("rowCount")  # documented as Alpha: COUNT(*) when absent
        files = stats.get("fileCount")
        schema = job_schema.of_job(query, [f.to_api_repr() for f in dry.schema or []], job.schemas, source.label)
        # A query has no snapshot to go back to: its fingerprint is the query run again, kept only
        # when it sees as many rows as were exported.
        fingerprint = fingerprint_job.compute(
            self.client,
            as_subquery(sql),
            params,
            schema,
            dry.location,
            source.label,
            job_id=fingerprint_job.fingerprint_job_id(job.job_id),
            deadline=job.deadline,
        )
        row_count = int(rows) if rows is not None else self._count_query(source, sql, params, dry.location, job)
        if fingerprint is not None and fingerprint["row_count"] != row_count:
            logger.warning("query result changed since its export; no fingerprint", label=source.label)
            fingerprint = None
        return ExportResult(
            job_id=query.job_id,
            row_count=row_count,
            schema=schema,
            file_count=int(files) if files is not None else None,
            location=dry.location,
            fingerprint=fingerprint,
            created=query.created,
        )

    def _fingerprint_at(
        self,
        table: TableRef,
        where: str,
        extract: Any,
        schema: list[dict[str, Any]],
        location: str | None,
        job: ExportJob,
    ) -> dict[str, Any] | None:
        """The table's fingerprint as of the extract's start (time travel): the snapshot it exported.
        ``where``: :func:`shared.gcp.partitions.every_row` of the table.

        The instant is an integer literal, not a query parameter: bqemulator evaluates
        FOR SYSTEM_TIME AS OF before it binds parameters (BigQuery accepts both)."""
        if extract.started is None:
            return None
        micros = round(extract.started.timestamp() * 1_000_000)
        return fingerprint_job.compute(
            self.client,
            f"{table.sql} FOR SYSTEM_TIME AS OF TIMESTAMP_MICROS({int(micros)}){where}",
            [],
            schema,
            location,
            table.label,
            as_of=extract.started.isoformat(),
            job_id=fingerprint_job.fingerprint_job_id(job.job_id),
            deadline=job.deadline,
        )

    def _dry_run(self, sql: str, params: list[Any], label: str) -> Any:
        """A dry run: the query's location (jobs outside US/EU are only found with it) and result schema."""
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(query_parameters=params, dry_run=True, use_query_cache=False)
        return call(
            lambda: self.client.query(sql, job_config=config, retry=api_retry(), job_retry=None),
            f"checking the query of {label}",
        )

    def _count_query(
        self, source: DatedQuery, sql: str, params: list[Any], location: str | None, job: ExportJob
    ) -> int:
        """COUNT(*) of the query an export ran (exportDataStatistics had no rowCount), by job
        ``…_count`` (:func:`~shared.gcp.fingerprint_job.count_job_id`): started once, re-attached
        to by every later finisher, waited for until ``job.deadline`` (JobPending past it: the
        count job's completion event, or the sweep, finishes the run)."""
        return fingerprint_job.count(
            self.client,
            f"SELECT COUNT(*) AS n FROM {as_subquery(sql)}",
            params,
            location,
            source.label,
            job_id=fingerprint_job.count_job_id(job.job_id),
            deadline=job.deadline,
        )

    def _count_at(self, table: TableRef, where: str, extract: Any, location: str | None, job: ExportJob) -> int:
        """COUNT(*) as of the extract's start (time travel), so later inserts do not skew it; the
        live table's when time travel is refused (or the extract has no start time). Each by its
        own job, ``…_count`` and ``…_count_live`` (:func:`~shared.gcp.fingerprint_job.count_job_id`:
        a finisher that comes back finds ``…_count`` failed and re-attaches to ``…_count_live``),
        started once and waited for until ``job.deadline`` (JobPending past it) as
        :meth:`_count_query`. The instant is a literal, as for the fingerprint (:meth:`_fingerprint_at`)."""

        def counted(sql: str, live: bool) -> int:
            job_id = fingerprint_job.count_job_id(job.job_id, live=live)
            return fingerprint_job.count(
                self.client, sql, [], location, table.label, job_id=job_id, deadline=job.deadline
            )

        live = f"SELECT COUNT(*) AS n FROM {table.sql}{where}"
        if extract.started is None:
            return counted(live, True)
        micros = round(extract.started.timestamp() * 1_000_000)
        try:
            return counted(
                f"SELECT COUNT(*) AS n FROM {table.sql} FOR SYSTEM_TIME AS OF TIMESTAMP_MICROS({int(micros)}){where}",
                False,
            )
        except PermanentError as exc:  # e.g. time travel not available for this table
            logger.warning("time-travel count failed; counting the live table", table=table.label, error=str(exc))
            return counted(live, True)

    def export_destination(self, job_id: str, location: str | None) -> str | None:
        """The destination URI of export job ``job_id`` (extract or EXPORT DATA); None when there is no
        such job or it exports nothing. What a completion event names is a job; this finds its run folder."""
        job = bq_jobs.get_job(self.client, job_id, location)
        if job is None:
            return None
        return destination_of(job._properties.get("configuration") or {})

    def _attach_or_start(self, job: ExportJob, start: Callable[[str], Any], location: str | None, label: str) -> Any:
        """The export job (:func:`shared.gcp.bq_jobs.attach_or_start`); the sweep (``job.start``
        False) starts only successors. Before a successor, the files its failed predecessor
        left are cleared: only those created by the time it ended, so a clear that runs again
        (a redelivery re-attaching, a twin whose insert got 409) never removes the successor's."""

        def clear_failed(failed: Any) -> None:
            if job.clear_leftovers is not None and failed.ended is not None:
                job.clear_leftovers(failed.ended)

        return bq_jobs.attach_or_start(
            self.client,
            job.job_id,
            start,
            location,
            job.deadline,
            label,
            start_first=job.start,
            before_retry=clear_failed,
        )

    def attach_or_start(
        self, base_id: str, start: Callable[[str], Any] | None, location: str | None, deadline: float, label: str
    ) -> Any:
        """See :func:`shared.gcp.bq_jobs.attach_or_start`."""
        return bq_jobs.attach_or_start(self.client, base_id, start, location, deadline, label)
