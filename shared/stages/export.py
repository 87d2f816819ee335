"""export_table: one table export (table-exports) → data files and ``_manifest.json`` in GCS.

Three triggers, one function (:data:`ROUTES`, through ``runner.dispatch``):
- ``table-exports``: start (or re-attach to) the export job and wait at most the time budget; a
  job still running then is left to finish on its own and the message is acknowledged — no
  delivery attempt is spent on waiting;
- ``bigquery-job-completed`` (Eventarc, BigQuery's audit-log entry of a job): the job's
  destination names its run folder; the same steps below then finish the run;
- ``export-sweeps`` (Cloud Scheduler): runs with ``_run.json`` and no manifest are re-checked
  against their job (its first attempt never started here; the ``_retryN`` of one that failed
  transiently is) — a lost completion event costs one sweep period.

Order inside the run folder, each step safe to repeat:
1. ``_run.json`` (the TableExport) with ``if_generation_match=0`` — upload functions route by it;
   a redelivery finds it there (412) and goes on; a *different* export under the same run id
   is rejected.
2. ``_manifest.json`` already there → the run is complete; nothing to do.
3. The export job, id = f(run_id, source, run folder): a redelivery, an event or the sweep re-attaches to
   the job instead of starting another. Waiting is bounded by the time budget
   (``OFFSITE_EXPORT_BUDGET_S``, default 60 s), and ends early once every request thread of
   the process is busy (:mod:`shared.in_flight`); then the invocation returns (acknowledged)
   and the job's completion event finishes the run. A failed job is a PermanentError carrying
   BigQuery's reason, reported once per run (a claim in the state bucket), as is a DONE job
   whose files cannot make a manifest (step 4); a claim whose report could not be published is
   deleted again, so a redelivery, a completion event or the sweep reports the failure.
3b. The fingerprint (docs/exports.md), once the export job is DONE: a query job under its own
   deterministic id (``…_fingerprint``, shared/gcp/fingerprint_job.py), started or re-attached
   the same way and bounded by the same deadline — the request handler, the completion event
   and the sweep share ONE query; its own completion event finishes the run when it outlasts them.
   A row count BigQuery did not give (no fingerprint of a table, no rowCount of a query) is such
   a job too: ``…_count`` (``…_count_live`` when time travel is refused).
4. ``_manifest.json`` LAST, ``if_generation_match=0``, only after the job succeeded and every
   file it reported is listed: a manifest never describes an incomplete export.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import os
import time
from typing import Any

from shared import log
from shared.config import Config
from shared.errors import ConfigError, PermanentError, RejectedInput, TransientError
from shared.events import parse_bigquery_job, parse_pubsub
from shared.gcp import gcs
from shared.gcp.bigquery import DatedQuery, ExportJob, TableRef, Warehouse, job_id_for, warehouse
from shared.gcp.bq_jobs import MAX_JOB_ATTEMPTS, JobPending, attempt_id
from shared.gcp.fingerprint_job import export_job_of, is_export_step, run_step_job_ids
from shared.ids import Stage
from shared.layout import MANIFEST_NAME, RUN_NAME, RunFolder, parse_object_name, render_file_name, run_folder_of
from shared.listing_parts import Cursor, list_next_part
from shared.manifest import Manifest
from shared.messages import TableExport
from shared.stages import failures
from shared.stages.export_records import (
    KeptSchemas,
    W,
    build_manifest,
    claim_failure,
    clear_leftovers,
    failure_claim,
    manifest_in,
    write_run_record,
)
from shared.topology import BQ_JOB_TRIGGER, EXPORT_SWEEPS, TABLE_EXPORTS

logger = log.get_logger(__name__)

BUDGET_ENV = "OFFSITE_EXPORT_BUDGET_S"
DEFAULT_BUDGET_S = 60.0
# The sweep looks at every open run: briefly each (a still-running job is left to its completion
# event or the next sweep), and starts no new look past its budget, so a sweep over many running
# exports stays inside one invocation (540 s).
SWEEP_LOOK_S = 3.0
SWEEP_BUDGET_S = 420.0  # from the sweep's start, its listing included (export_table stops at 540 s)
SWEEP_LISTING_S = 240.0  # the listing stops at a run folder's boundary after it; the next sweep goes on
SWEEP_LOOKBACK = dt.timedelta(days=2)  # a BigQuery job runs at most 6 h; older runs are not its business
JOB_PREFIX = "offsite_"


def time_budget_s() -> float:
    raw = os.environ.get(BUDGET_ENV)
    if not raw:
        return DEFAULT_BUDGET_S
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{BUDGET_ENV}: {raw!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:  # nan or inf would wait for a running job without end
        raise ConfigError(f"{BUDGET_ENV}: {raw!r} must be a finite, positive number of seconds")
    return value


def run_folder(task: TableExport, config: Config) -> RunFolder:
    return RunFolder(config.export_prefix.strip("/"), task.source, task.date, task.run_id)


def export_job_id(task: TableExport, config: Config) -> str:
    """The run's export job id: a function of its run folder, date included (a run id reused for
    another day is another job, never a re-attach to the first day's)."""
    return job_id_for(task.run_id, task.source, folder=run_folder(task, config).prefix)


def job_bases(task: TableExport, config: Config) -> tuple[str, ...]:
    """The export job ids a completion entry of this run may name: today's form, then the form
    without the folder that versions before 2026-12-04 started (a job in flight across a deploy
    still finishes its run)."""
    return (export_job_id(task, config), job_id_for(task.run_id, task.source))


def check_task(task: TableExport, config: Config) -> None:
    """A table export must describe something fan_out could have produced from this config."""
    src = task.source
    if src.project != config.project:
        raise RejectedInput(f"{W}.source.project: {src.project!r} is not the configured project {config.project!r}")
    if src.mode == "table" and config.dataset(src.dataset or "") is None:
        known = ", ".join(d.name for d in config.datasets) or "none configured"
        raise RejectedInput(f"{W}.source.dataset: {src.dataset!r} is not a configured dataset (configured: {known})")
    if src.mode == "query" and config.export(src.export or "") is None:
        known = ", ".join(e.name for e in config.exports) or "none configured"
        raise RejectedInput(f"{W}.source.export: {src.export!r} is not a configured export (configured: {known})")
    expected = run_folder(task, config).prefix
    if task.prefix != expected:
        raise RejectedInput(f"{W}.prefix: {task.prefix!r} is not this run's folder (expected {expected!r})")
    if task.file_name.count("*") != 1 or "/" in task.file_name or task.file_name.startswith("_"):
        raise RejectedInput(
            f"{W}.file_name: {task.file_name!r} must contain exactly one '*', no '/', and not start with '_'"
        )
    known_destinations = config.destination_names()
    for name in task.destinations:
        if name not in known_destinations:
            raise RejectedInput(
                f"{W}.destinations: {name!r} is not a configured destination (configured: {', '.join(known_destinations)})"
            )


def file_pattern(task: TableExport) -> str:
    """The file name template with its placeholders filled; the ``*`` is the shard number."""
    src = task.source
    return render_file_name(task.file_name, date=task.date, export=src.export or "", table=src.table or "")


def export_table(
    event: Any, config: Config, *, wh: Warehouse | None = None, storage_client: Any | None = None
) -> Manifest | None:
    """Handle one table-exports CloudEvent; returns the run's manifest (new or already written), or
    None when the job is still running (its completion event finishes the run)."""
    started = time.monotonic()
    message = parse_pubsub(event)
    with log.bind(message_id=message.message_id):
        task = TableExport.from_json(message.data)
        with log.bind(run_id=task.run_id, table=task.source.label, source=task.source.to_dict()):
            check_task(task, config)
            return run_export(task, config, wh or warehouse(), started + time_budget_s(), storage_client)


def run_export(
    task: TableExport,
    config: Config,
    wh: Warehouse,
    deadline: float,
    storage_client: Any | None = None,
    *,
    start: bool = True,
    job_id: str | None = None,
) -> Manifest | None:
    """The run's manifest (written now or before), or None while its job runs (or, with
    ``start=False``, does not exist) or when its failure was already reported. ``job_id``: the
    export job to attach to, when a completion entry named one (:func:`job_bases`)."""
    bucket, folder = config.bucket, run_folder(task, config)
    # A run record written just now means no job and no manifest yet: one GCS read saved per table.
    first = write_run_record(task, bucket, folder, storage_client)
    done = None if first else manifest_in(bucket, folder, storage_client)
    if done is not None:
        logger.info("run already complete; manifest exists", manifest=folder.manifest_name)
        return done
    pattern = file_pattern(task)
    job = ExportJob(
        job_id=job_id or export_job_id(task, config),
        source=_source_of(task, config),
        bucket=bucket,
        prefix=folder.prefix,
        file_pattern=pattern,
        format=task.format,
        deadline=deadline,
        start=start,
        schemas=KeptSchemas(config.state_bucket_name, folder, storage_client),
        clear_leftovers=functools.partial(clear_leftovers, bucket, folder, pattern, storage_client=storage_client),
    )
    try:
        return _finish(task, wh, job, folder, storage_client)
    except JobPending as pending:
        logger.info(
            "export, fingerprint or count job not done; its completion event (or the finalize sweep) writes the manifest",
            job_id=pending.job_id,
            state=pending.state,
        )
        return None
    except PermanentError as exc:  # the job's, or its files' (build_manifest): either ends the run
        if not claim_failure(config, folder, exc, storage_client):
            logger.info("export failure already reported for this run", error=str(exc))
            return None
        failures.release_if_unreported(exc, config.state_bucket_name, failure_claim(folder))
        raise


def _finish(
    task: TableExport, wh: Warehouse, job: ExportJob, folder: RunFolder, storage_client: Any | None
) -> Manifest:
    """The job's result (JobPending while it runs) → the run's manifest, written last."""
    result = wh.export(job)
    # Another finisher (the handler, a completion event, the sweep) may have written it meanwhile:
    # then listing the folder again would be for nothing.
    done = manifest_in(job.bucket, folder, storage_client)
    if done is not None:
        logger.info("run completed meanwhile; manifest exists", manifest=folder.manifest_name)
        return done
    manifest = build_manifest(task, job.bucket, folder, job.file_pattern, result, storage_client)
    return _write_manifest(manifest, job.bucket, folder, storage_client)


def _source_of(task: TableExport, config: Config) -> TableRef | DatedQuery:
    """What the export job reads: the table, or the configured query for the task's date."""
    if task.source.mode == "table":
        return TableRef(task.source.project, task.source.dataset or "", task.source.table or "")
    entry = config.export(task.source.export or "")
    assert entry is not None
    return DatedQuery(entry.name, entry.sql, task.date, snapshot=entry.snapshot)


def _write_manifest(manifest: Manifest, bucket: str, folder: RunFolder, storage_client: Any | None) -> Manifest:
    """Write ``manifest`` last into the run folder, unless another finisher already did: then theirs."""
    if gcs.write_if_absent(bucket, folder.manifest_name, manifest.to_json(), "application/json", client=storage_client):
        logger.info(
            "manifest written", manifest=folder.manifest_name, files=len(manifest.files), rows=manifest.row_count
        )
        return manifest
    logger.info("manifest was written concurrently; keeping it", manifest=folder.manifest_name)
    existing = manifest_in(bucket, folder, storage_client)
    if existing is None:  # the write lost to it, yet it is gone: look again from the start
        raise TransientError(f"{folder.manifest_name} was written concurrently but cannot be read")
    return existing


# ---- completion events and the sweep ---------------------------------------------------------


def finalize_job(
    event: Any, config: Config, *, wh: Warehouse | None = None, storage_client: Any | None = None
) -> Manifest | None:
    """A BigQuery job's audit-log entry: when it is one of our export jobs, finish its run.

    The entry only says *which* job; the job (read from BigQuery) says where it exported, and that
    run folder's ``_run.json`` says what to do. Entries of other jobs, of jobs not DONE, and
    duplicates are acknowledged with nothing done (the manifest exists; a failure was reported).
    It never waits: an export job's entry starts the fingerprint job if nobody has and looks at it
    once; while it runs, the request handler waiting on it or its own entry writes the manifest.
    """
    job = parse_bigquery_job(event)
    with log.bind(job_id=job.job_id, event_id=job.event_id or ""):
        if not job.job_id.startswith(JOB_PREFIX) or not is_export_step(job.job_id) or job.project != config.project:
            logger.debug("not an offsite export job; ignored", project=job.project)
            return None
        if job.state and job.state != "DONE":
            logger.info("job entry is not its completion; ignored", state=job.state)
            return None
        wh = wh or warehouse()
        uri = _destination_of(wh, job.job_id, job.location)
        task = _task_of(uri, config, storage_client) if uri else None
        if task is None:
            logger.warning("job exports to no offsite run folder; ignored", destination=uri)
            return None
        base = next((b for b in job_bases(task, config) if job.job_id in _attempts_of(b)), None)
        if base is None:
            logger.warning(
                "job is not one of this run's jobs; ignored", run_id=task.run_id, expected=job_bases(task, config)[0]
            )
            return None
        with log.bind(run_id=task.run_id, table=task.source.label, source=task.source.to_dict()):
            # One look, no waiting: the job the entry names is DONE; a fingerprint or count job still
            # running (started by the request handler, or now) sends its own entry when it ends.
            return run_export(task, config, wh, time.monotonic(), storage_client, job_id=base)


def _attempts_of(base: str) -> set[str]:
    """Every id of export job ``base`` and of the jobs that follow it (fingerprint, row counts:
    ``run_step_job_ids``), retries included."""
    return {attempt_id(b, n) for b in (base, *run_step_job_ids(base)) for n in range(MAX_JOB_ATTEMPTS)}


def _destination_of(wh: Warehouse, job_id: str, location: str | None) -> str | None:
    """The destination URI of an export job, or of the export job a fingerprint or count job
    belongs to (such a job's completion is the last step of its run)."""
    export_base = export_job_of(job_id)
    if export_base is None:
        return wh.export_destination(job_id, location)
    for n in range(MAX_JOB_ATTEMPTS):
        uri = wh.export_destination(attempt_id(export_base, n), location)
        if uri:
            return uri
    return None


def _task_of(uri: str, config: Config, storage_client: Any | None) -> TableExport | None:
    """The TableExport of the run folder a ``gs://bucket/…/file-*`` destination lies in."""
    if not uri.startswith(f"gs://{config.bucket}/"):
        return None
    parsed = parse_object_name(uri[len(f"gs://{config.bucket}/") :], config.export_prefix, config.project)
    if parsed is None:
        return None
    folder = parsed[0]
    raw = gcs.read_bytes(config.bucket, folder.run_name, client=storage_client)
    if raw is None:
        return None
    return TableExport.from_json(raw)


def finalize_cursor(state_bucket: str, export_prefix: str) -> Cursor:
    """Where the next finalize sweep's part of the export listing starts."""
    return Cursor(state_bucket, f"sweep/{export_prefix.strip('/')}/finalize-cursor.json")


def finalize_sweep(
    event: Any,
    config: Config,
    *,
    wh: Warehouse | None = None,
    storage_client: Any | None = None,
    now: dt.datetime | None = None,
) -> list[str]:
    """Every recent run folder with ``_run.json`` and no manifest: re-attach to its job (never start
    its first attempt; start the successor of one that failed transiently, whose completion event
    would have) and finish the run if the job is DONE (starting the fingerprint job if nobody has:
    it reads what the DONE export job wrote). Returns the run folders it wrote a manifest for."""
    message = parse_pubsub(event)
    started = time.monotonic()
    stop_at = started + SWEEP_BUDGET_S  # the listing below counts: it grows with the history kept
    now = now or dt.datetime.now(dt.UTC)
    wh = wh or warehouse()
    head = config.export_prefix.strip("/") + "/"
    # folder names only, never the objects: the prefix holds all the history the lifecycle rule
    # keeps, read in parts across sweeps where it is long (docs/capacity.md, "The sweeps' listings")
    runs: set[str] = set()
    manifests: set[str] = set()

    def add(obj: gcs.ObjectInfo) -> None:
        folder, _, name = obj.name.rpartition("/")
        if name == MANIFEST_NAME:
            manifests.add(folder)
        elif name == RUN_NAME and (obj.time_created is None or now - obj.time_created < SWEEP_LOOKBACK):
            runs.add(folder)

    cursor = finalize_cursor(config.state_bucket_name, config.export_prefix)
    part = list_next_part(
        cursor, config.bucket, head, lambda n: run_folder_of(n, head), add, stop_at=started + SWEEP_LISTING_S, now=now
    )
    open_runs = sorted(runs - manifests)
    finished: list[str] = []
    logger.info(
        "finalize sweep", message_id=message.message_id, runs=len(runs), open=len(open_runs), next_start=part.next_start
    )

    def finish(folder: str) -> None:
        if time.monotonic() > stop_at:
            return  # the next sweep looks at it
        raw = gcs.read_bytes(config.bucket, f"{folder}/{RUN_NAME}", client=storage_client)
        if raw is None:
            return
        task = TableExport.from_json(raw)
        with log.bind(run_id=task.run_id, table=task.source.label, source=task.source.to_dict()):
            deadline = min(time.monotonic() + SWEEP_LOOK_S, stop_at)
            if run_export(task, config, wh, deadline, storage_client, start=False) is not None:
                finished.append(folder)

    failures.each(Stage.EXPORT_TABLE, open_runs, finish, lambda folder: {"run_folder": folder})
    return finished


def _on_table_export(event: Any, config: Config) -> None:
    export_table(event, config)


def _on_job_event(event: Any, config: Config) -> None:
    finalize_job(event, config)


def _on_sweep(event: Any, config: Config) -> None:
    finalize_sweep(event, config)


ROUTES = {TABLE_EXPORTS: _on_table_export, BQ_JOB_TRIGGER: _on_job_event, EXPORT_SWEEPS: _on_sweep}
