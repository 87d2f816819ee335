"""One BigQuery load job with the manifest's exact schema, then the restored table compared with
the manifest: row count, schema (names, types, modes, nesting) and the per-column fingerprint."""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from google.api_core import exceptions as gexc

from shared import log
from shared.errors import PermanentError, RejectedInput
from shared.gcp import bq_jobs, fingerprint_job, partitions
from shared.gcp.bigquery import BigQueryWarehouse
from shared.gcp.fingerprint import differences
from shared.manifest import Manifest
from shared.restore.stage import OutOfTime

logger = log.get_logger(__name__)

WRITE_DISPOSITIONS = {"empty": "WRITE_EMPTY", "truncate": "WRITE_TRUNCATE", "append": "WRITE_APPEND"}
# BigQuery: a project id may hold ``-``, ``.`` and ``:`` (domain-scoped), a dataset only letters,
# digits and ``_``, a table also ``-`` (restore's targets and the drill's scratch names)
TABLE_RE = re.compile(r"^[A-Za-z0-9_.:-]+\.[A-Za-z0-9_]+\.[A-Za-z0-9_-]+$")
# BigQuery answers a schema with legacy names; the manifest may hold either
TYPE_NAMES = {"INT64": "INTEGER", "FLOAT64": "FLOAT", "BOOL": "BOOLEAN", "STRUCT": "RECORD", "BIGDECIMAL": "BIGNUMERIC"}
LOAD_TIMEOUT_S = 3600.0


def parse_target(target: str) -> str:
    """``PROJECT.DATASET.TABLE``, checked; RejectedInput naming the value otherwise."""
    if not TABLE_RE.match(target):
        raise RejectedInput(
            f"restore --to: {target!r} is not PROJECT.DATASET.TABLE (a dataset of letters, digits"
            " and '_'; a table of those and '-')"
        )
    return target


def check_disposition(disposition: str) -> str:
    """One of WRITE_DISPOSITIONS' keys; RejectedInput naming the value otherwise."""
    if disposition not in WRITE_DISPOSITIONS:
        raise RejectedInput(
            f"restore --write-disposition: {disposition!r} is not one of {', '.join(WRITE_DISPOSITIONS)}"
        )
    return disposition


def load_job_config(manifest: Manifest, disposition: str) -> Any:
    """The load settings: the manifest's format and schema (never autodetect), CSV's header row,
    Avro's logical types, and the write disposition."""
    from google.cloud import bigquery

    check_disposition(disposition)
    config = bigquery.LoadJobConfig(
        source_format=manifest.format,
        schema=[bigquery.SchemaField.from_api_repr(f) for f in manifest.schema],
        write_disposition=WRITE_DISPOSITIONS[disposition],
        create_disposition="CREATE_IF_NEEDED",
        autodetect=False,
    )
    if manifest.format == "CSV":
        config.skip_leading_rows = 1  # offsite's CSV exports have a header
        config.allow_quoted_newlines = True
    if manifest.format == "AVRO":
        config.use_avro_logical_types = True
    return config


def run_load(
    client: Any,
    uris: list[str],
    target: str,
    manifest: Manifest,
    disposition: str,
    job_id: str,
    *,
    timeout_s: float | None = None,
) -> Any:
    """One load job of every staged file; raises PermanentError with BigQuery's reason on failure,
    RejectedInput when the failure is the input's (a table that has rows under ``empty``: what to
    do instead; a ``--to`` dataset that does not exist); OutOfTime when the job is not
    done within ``timeout_s`` (the job is then asked to cancel: nothing may land after the restore
    has given up on it and its staged files are deleted)."""
    config = load_job_config(manifest, disposition)

    def start() -> Any:
        try:
            return client.load_table_from_uri(uris, target, job_config=config, job_id=job_id, retry=bq_jobs.api_retry())
        except gexc.Conflict:  # the id is this restore's own: an earlier try of this insert reached BigQuery
            return _started_before(client, job_id, target)

    job = bq_jobs.call(start, f"starting the load of {target}", every_api_error=True)
    waited = timeout_s or LOAD_TIMEOUT_S
    ends = time.monotonic() + waited
    try:
        what = f"load job {job.job_id} into {target}"
        bq_jobs.call(lambda: _result(job, ends, waited, what), f"loading {target}", every_api_error=True)
    except OutOfTime:
        raise
    except PermanentError:
        error = getattr(job, "error_result", None) or {}
        if error.get("reason") == "duplicate":  # BigQuery's 409 for WRITE_EMPTY
            raise RejectedInput(
                f"restore: --to {target} already has rows; use --write-disposition truncate or append"
            ) from None
        if error.get("reason") == "notFound":  # the --to dataset does not exist (the staged files were just written)
            raise RejectedInput(f"restore: --to {target}: not found: {error.get('message', '')}") from None
        raise  # a refusal (access denied, ...) or a failed load: the operation failed, not the input
    return job


def _started_before(client: Any, job_id: str, target: str) -> Any:
    """The load job ``job_id`` that an earlier try of the insert started (its answer was lost and
    the insert was sent again): waited for like a new one, never started twice (an ``append``
    would load the rows twice)."""
    from google.cloud import bigquery

    ref = bigquery.TableReference.from_string(target)
    dataset = client.get_dataset(bigquery.DatasetReference(ref.project, ref.dataset_id), retry=bq_jobs.api_retry())
    job = bq_jobs.existing_job(client, job_id, dataset.location)
    logger.info("load job already started; waiting for it", job_id=job_id, target=target)
    return job


def _result(job: Any, ends: float, waited: float, what: str, **result_kwargs: Any) -> Any:
    """The finished job's result, waited for until ``ends`` (``time.monotonic()``) across retries
    of the wait; OutOfTime, the job asked to cancel, once it is past. (The library's TimeoutError
    must not reach bq_jobs.call: taken for a transient failure, each retry waited the whole time
    again — or, for a query, ran it again.) ``what`` names the job: ``load job J into T``."""
    left = ends - time.monotonic()
    if left > 0:
        with contextlib.suppress(TimeoutError):  # the library stops when its next poll would pass ``left``
            return job.result(timeout=left, retry=bq_jobs.api_retry(), **result_kwargs)
    try:
        job.cancel(retry=bq_jobs.api_retry())
    except Exception as exc:  # noqa: BLE001 - the OutOfTime below is the outcome either way
        logger.warning("could not cancel the job", job_id=job.job_id, error=str(exc))
    raise OutOfTime(f"did not finish within the budget: {what} still running after {waited:.0f} s (asked to cancel)")


def normalized_schema(fields: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Names, types, modes and nesting only (descriptions, policy tags and the like are not compared)."""
    out = []
    for f in fields:
        kind = str(f.get("type", "")).upper()
        entry: dict[str, Any] = {
            "name": f["name"],
            "type": TYPE_NAMES.get(kind, kind),
            "mode": str(f.get("mode") or "NULLABLE").upper(),
        }
        if f.get("fields"):
            entry["fields"] = normalized_schema(f["fields"])
        out.append(entry)
    return out


@dataclass(frozen=True)
class Proof:
    """The restored table against the manifest; ``equal`` when nothing differs."""

    target: str
    rows: int
    problems: list[str] = field(default_factory=list)
    fingerprint_checked: bool = False

    @property
    def equal(self) -> bool:
        return not self.problems


def prove(
    wh: BigQueryWarehouse,
    target: str,
    manifest: Manifest,
    *,
    job_id: str | None = None,
    deadline: float | None = None,
) -> Proof:
    """Row count, schema and (when the manifest has one) the fingerprint of ``target``. The row
    count and the fingerprint come from ONE query job, ``job_id`` (default: a new
    ``offsite_proof_…``), started once and waited for until ``deadline`` (``time.monotonic()``;
    default LOAD_TIMEOUT_S from now): OutOfTime, the job asked to cancel, once it is past."""
    ends = deadline if deadline is not None else time.monotonic() + LOAD_TIMEOUT_S
    table = bq_jobs.call(lambda: wh.client.get_table(target, retry=bq_jobs.api_retry()), f"reading {target}")
    problems = []
    want, got = normalized_schema(manifest.schema), normalized_schema([f.to_api_repr() for f in table.schema])
    if want != got:
        problems.append(f"schema differs: restored {got}, exported {want}")
    job_id = job_id or f"offsite_proof_{uuid.uuid4().hex}"
    try:
        fingerprint = _fingerprint(wh.client, table, target, manifest, job_id, ends)
    except OutOfTime:
        raise
    except PermanentError as exc:  # the query failed: nothing to compare (reported below, as before)
        logger.warning("the restored table's fingerprint query failed", target=target, error=str(exc))
        fingerprint = None
    if fingerprint is None:
        problems.append("the restored table's fingerprint could not be computed")
        return Proof(target, -1, problems)
    rows = int(fingerprint["row_count"])
    if rows != manifest.row_count:
        problems.append(f"row count {rows}, the manifest says {manifest.row_count}")
    if manifest.fingerprint is not None:
        problems.extend(d for d in differences(manifest.fingerprint, fingerprint) if not d.startswith("row count"))
    return Proof(target, rows, problems, fingerprint_checked=manifest.fingerprint is not None)


def _fingerprint(client: Any, table: Any, target: str, manifest: Manifest, job_id: str, ends: float) -> dict[str, Any]:
    """The proof's fingerprint query, job ``job_id``: started once (a 409 on a resent insert is
    the same job), waited for until ``ends``; never started again (BigQuery bills each scan)."""
    waited = ends - time.monotonic()
    if waited <= 0:
        raise OutOfTime(f"did not finish within the budget: {target} loaded, its proof was not started")
    quoted = "`" + target.replace(":", ".") + "`" + partitions.every_row(table)  # a table restored into may require one

    def start() -> Any:
        try:
            return fingerprint_job.start(client, quoted, [], manifest.schema, table.location, job_id)
        except gexc.Conflict:  # this proof's own id: an earlier try of this insert reached BigQuery
            return bq_jobs.existing_job(client, job_id, table.location)

    job = bq_jobs.call(start, f"starting the fingerprint query of {target}", every_api_error=True)
    what = f"the proof's fingerprint query {job_id} of {target}"
    rows = bq_jobs.call(
        lambda: list(_result(job, ends, waited, what, job_retry=None)), f"proving {target}", every_api_error=True
    )
    return fingerprint_job.of_row(rows[0], manifest.schema)
