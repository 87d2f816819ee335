"""Running the fingerprint query (:mod:`shared.gcp.fingerprint`), and an export's row count, against BigQuery.

An export's fingerprint is a BigQuery job under a deterministic id, ``<export job id>`` with its
``_export`` step replaced by ``_fingerprint`` (:func:`fingerprint_job_id`), started and re-attached
like the export job (:func:`shared.gcp.bq_jobs.attach_or_start`): export_table's request
handler, the export job's completion event and the finalize sweep all finish the same run, and
all of them re-attach to ONE query instead of scanning the table once each. Waiting is bounded
by the caller's deadline; past it :class:`~shared.gcp.bq_jobs.JobPending` propagates (the run is
acknowledged; the fingerprint job's own completion event, or the sweep, writes the manifest).

An export's row count, when neither the fingerprint (a table's) nor exportDataStatistics (a
query's) gave it, is such a job too (:func:`count`): ``…_count`` (the snapshot's COUNT(*), or the
query's), and ``…_count_live`` (the live table's, when time travel is refused), ids derived as the
fingerprint's (:func:`count_job_id`). A count that outlasts the deadline is re-attached to, never
run again; its completion event finishes the run (:func:`export_job_of` names its export job).

Restore's proof starts its own job under a caller-given id (:func:`start`) and waits for that
one job under its own deadline (``shared.restore.load.prove``): a wait that runs out never starts
a second query. Without a job id (tests) :func:`compute` runs the query once, unnamed.
"""

from __future__ import annotations

import re
from typing import Any

from shared import log
from shared.errors import PermanentError
from shared.gcp import bq_jobs, fingerprint
from shared.gcp.bq_jobs import QUERY_TIMEOUT_S, api_retry, call

logger = log.get_logger(__name__)

EXPORT_STEP = "_export"
FINGERPRINT_STEP = "_fingerprint"
COUNT_STEP = "_count"  # COUNT(*) of the snapshot (time travel) or of the query, when nothing else gave it
LIVE_COUNT_STEP = "_count_live"  # COUNT(*) of the live table: time travel refused, or no start time
RUN_STEPS = (FINGERPRINT_STEP, COUNT_STEP, LIVE_COUNT_STEP)  # the jobs after the export job, one run each
_ATTEMPT = re.compile(r"_retry\d+\Z")


def _run_base(export_job_id: str) -> str:
    """The export job id without its ``_retryN`` and its ``_export`` step."""
    base = _ATTEMPT.sub("", export_job_id)
    return base[: -len(EXPORT_STEP)] if base.endswith(EXPORT_STEP) else base


def fingerprint_job_id(export_job_id: str) -> str:
    """The fingerprint job's id for an export job id (``shared.gcp.bigquery.job_id_for(…, "export")``)."""
    return _run_base(export_job_id) + FINGERPRINT_STEP


def count_job_id(export_job_id: str, *, live: bool = False) -> str:
    """The row-count job's id for an export job id, derived as :func:`fingerprint_job_id`:
    ``…_count`` (the snapshot's, or a query's), ``live``: ``…_count_live`` (the live table's, the
    fallback when the snapshot cannot be counted; its own id, since ``…_count`` exists and failed)."""
    return _run_base(export_job_id) + (LIVE_COUNT_STEP if live else COUNT_STEP)


def run_step_job_ids(export_job_id: str) -> tuple[str, ...]:
    """The base ids of the jobs that follow export job ``export_job_id`` (fingerprint, counts):
    each one's completion event finishes the run when it outlasts every handler."""
    base = _run_base(export_job_id)
    return tuple(base + step for step in RUN_STEPS)


def is_export_step(job_id: str) -> bool:
    """An export, fingerprint or count job's id (any attempt), as ``job_id_for`` names them: the
    only ``offsite_`` jobs the exporter reads back (a restore's load job is not its to read)."""
    return _ATTEMPT.sub("", job_id).endswith((EXPORT_STEP, *RUN_STEPS))


def export_job_of(job_id: str) -> str | None:
    """The export job's base id for a fingerprint or count job id (any attempt); None for any other id."""
    base = _ATTEMPT.sub("", job_id)
    for step in RUN_STEPS:
        if base.endswith(step):
            return base[: -len(step)] + EXPORT_STEP
    return None


def start(
    client: Any,
    from_clause: str,
    params: list[Any],
    schema: list[dict[str, Any]],
    location: str | None,
    job_id: str | None,
) -> Any:
    """Insert the fingerprint query of ``SELECT … FROM from_clause`` as job ``job_id`` (errors
    unmapped; the library never runs it again: ``job_retry=None``)."""
    from google.cloud import bigquery

    sql = fingerprint.fingerprint_sql(from_clause, fingerprint.columns_of(schema))
    config = bigquery.QueryJobConfig(query_parameters=params)
    return client.query(sql, job_config=config, job_id=job_id, location=location, retry=api_retry(), job_retry=None)


def of_row(row: Any, schema: list[dict[str, Any]], *, as_of: str | None = None) -> dict[str, Any]:
    """The fingerprint in the fingerprint query's one row."""
    return fingerprint.from_row(row, fingerprint.columns_of(schema), as_of=as_of)


def compute(
    client: Any,
    from_clause: str,
    params: list[Any],
    schema: list[dict[str, Any]],
    location: str | None,
    label: str,
    *,
    as_of: str | None = None,
    job_id: str | None = None,
    deadline: float | None = None,
) -> dict[str, Any] | None:
    """The fingerprint of ``SELECT … FROM from_clause``; None (logged) when BigQuery cannot compute
    it (a fingerprint never fails an export). With ``job_id``: that job, started only if it does
    not exist, waited for until ``deadline`` (JobPending past it)."""

    def started(jid: str | None) -> Any:
        return start(client, from_clause, params, schema, location, jid)

    def first_row(job: Any) -> Any:
        return list(job.result(retry=api_retry(), timeout=QUERY_TIMEOUT_S))[0]

    try:
        if job_id is None:
            row = call(lambda: first_row(started(None)), f"fingerprinting {label}")
        else:
            assert deadline is not None, "a fingerprint job needs a deadline"
            job = bq_jobs.attach_or_start(client, job_id, started, location, deadline, f"fingerprint of {label}")
            row = call(lambda: first_row(job), f"reading the fingerprint of {label}")
    except PermanentError as exc:
        logger.warning("fingerprint query failed; the manifest has none", label=label, error=str(exc))
        return None
    return of_row(row, schema, as_of=as_of)


def count(
    client: Any, sql: str, params: list[Any], location: str | None, label: str, *, job_id: str, deadline: float
) -> int:
    """``sql``'s one value (a ``SELECT COUNT(*)``) by job ``job_id`` (:func:`count_job_id`), started
    only if it does not exist and waited for until ``deadline`` (JobPending past it): a count that
    outlasts the wait is re-attached to by the next finisher, never run again. Errors (a failed
    job: PermanentError) propagate: a row count, unlike a fingerprint, is not optional."""
    from google.cloud import bigquery

    def started(jid: str) -> Any:
        config = bigquery.QueryJobConfig(query_parameters=params)
        return client.query(sql, job_config=config, job_id=jid, location=location, retry=api_retry(), job_retry=None)

    job = bq_jobs.attach_or_start(client, job_id, started, location, deadline, f"row count of {label}")
    rows = call(
        lambda: list(job.result(retry=api_retry(), timeout=QUERY_TIMEOUT_S, job_retry=None)),
        f"reading the row count of {label}",
    )
    return int(rows[0][0])
