"""Running the fingerprint query (:mod:`shared.gcp.fingerprint`) against BigQuery.

An export's fingerprint is a BigQuery job under a deterministic id, ``<export job id>`` with its
``_export`` step replaced by ``_fingerprint`` (:func:`fingerprint_job_id`), started and re-attached
like the export job (:func:`shared.gcp.bq_jobs.attach_or_start`): export_table's request
handler, the export job's completion event and the finalize sweep all finish the same run, and
all of them re-attach to ONE query instead of scanning the table once each. Waiting is bounded
by the caller's deadline; past it :class:`~shared.gcp.bq_jobs.JobPending` propagates (the run is
acknowledged; the fingerprint job's own completion event, or the sweep, writes the manifest).

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
_ATTEMPT = re.compile(r"_retry\d+\Z")


def fingerprint_job_id(export_job_id: str) -> str:
    """The fingerprint job's id for an export job id (``shared.gcp.bigquery.job_id_for(…, "export")``)."""
    base = _ATTEMPT.sub("", export_job_id)
    if base.endswith(EXPORT_STEP):
        base = base[: -len(EXPORT_STEP)]
    return base + FINGERPRINT_STEP


def is_export_step(job_id: str) -> bool:
    """An export or fingerprint job's id (any attempt), as ``job_id_for`` names them: the only
    ``offsite_`` jobs the exporter reads back (a restore's load job is not its to read)."""
    return _ATTEMPT.sub("", job_id).endswith((EXPORT_STEP, FINGERPRINT_STEP))


def export_job_of(job_id: str) -> str | None:
    """The export job's base id for a fingerprint job id (any attempt); None for any other id."""
    base = _ATTEMPT.sub("", job_id)
    if not base.endswith(FINGERPRINT_STEP):
        return None
    return base[: -len(FINGERPRINT_STEP)] + EXPORT_STEP


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
