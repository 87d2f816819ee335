"""export_table: one table export (table-exports) → data files and ``_manifest.json`` in GCS.

Order inside the run folder, each step safe to repeat:
1. ``_run.json`` (the TableExport) with ``if_generation_match=0`` — upload functions route by it;
   a redelivery finds it there (412) and goes on; a *different* export under the same run id
   is rejected.
2. ``_manifest.json`` already there → the run is complete; nothing to do.
3. The export job, id = f(run_id, source): a redelivery re-attaches to the job instead of
   starting another. Waiting is bounded by the time budget (``OFFSITE_EXPORT_BUDGET_S``,
   default 360 s, under the function's 540 s timeout); past it TransientError → the retry
   re-attaches. A failed job is a PermanentError carrying BigQuery's reason.
4. ``_manifest.json`` LAST, ``if_generation_match=0``, only after the job succeeded and every
   file it reported is listed: a manifest never describes an incomplete export.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import time
from typing import Any

from shared import log
from shared.config import Config
from shared.errors import ConfigError, PermanentError, RejectedInput, TransientError
from shared.events import parse_pubsub
from shared.gcp import gcs
from shared.gcp.bigquery import (
    COMPRESSION,
    DatedQuery,
    ExportJob,
    ExportResult,
    TableRef,
    Warehouse,
    job_id_for,
    warehouse,
)
from shared.layout import RunFolder, is_data_file, render_file_name
from shared.manifest import Manifest, ManifestFile
from shared.messages import TableExport

logger = log.get_logger(__name__)

BUDGET_ENV = "OFFSITE_EXPORT_BUDGET_S"
DEFAULT_BUDGET_S = 360.0
W = "table export"


def time_budget_s() -> float:
    raw = os.environ.get(BUDGET_ENV)
    if not raw:
        return DEFAULT_BUDGET_S
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{BUDGET_ENV}: {raw!r} is not a number of seconds") from None
    if value <= 0:
        raise ConfigError(f"{BUDGET_ENV}: {raw!r} must be positive")
    return value


def run_folder(task: TableExport, config: Config) -> RunFolder:
    return RunFolder(config.export_prefix.strip("/"), task.source, task.date, task.run_id)


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


def shard_regex(pattern: str) -> re.Pattern[str]:
    head, tail = pattern.split("*", 1)
    return re.compile(re.escape(head) + r"\d{12}" + re.escape(tail) + r"\Z")


def export_table(
    event: Any, config: Config, *, wh: Warehouse | None = None, storage_client: Any | None = None
) -> Manifest:
    """Handle one table-exports CloudEvent; returns the run's manifest (new or already written)."""
    started = time.monotonic()
    message = parse_pubsub(event)
    with log.bind(message_id=message.message_id):
        task = TableExport.from_json(message.data)
        with log.bind(run_id=task.run_id, table=task.source.label, source=dataclasses.asdict(task.source)):
            check_task(task, config)
            return run_export(
                task, config, wh or warehouse(config.shard_size_bytes), started + time_budget_s(), storage_client
            )


def run_export(
    task: TableExport, config: Config, wh: Warehouse, deadline: float, storage_client: Any | None = None
) -> Manifest:
    bucket, folder = config.bucket, run_folder(task, config)
    _write_run_record(task, bucket, folder, storage_client)
    done = gcs.read_bytes(bucket, folder.manifest_name, client=storage_client)
    if done is not None:
        logger.info("run already complete; manifest exists", manifest=folder.manifest_name)
        return Manifest.from_json(done, folder.manifest_name)
    pattern = file_pattern(task)
    source: TableRef | DatedQuery
    if task.source.mode == "table":
        source = TableRef(task.source.project, task.source.dataset or "", task.source.table or "")
    else:
        entry = config.export(task.source.export or "")
        assert entry is not None
        source = DatedQuery(entry.name, entry.sql, task.date)
    job = ExportJob(
        job_id=job_id_for(task.run_id, task.source),
        source=source,
        bucket=bucket,
        prefix=folder.prefix,
        file_pattern=pattern,
        format=task.format,
        deadline=deadline,
    )
    result = wh.export(job)
    manifest = build_manifest(task, bucket, folder, pattern, result, storage_client)
    if gcs.write_if_absent(bucket, folder.manifest_name, manifest.to_json(), "application/json", client=storage_client):
        logger.info(
            "manifest written", manifest=folder.manifest_name, files=len(manifest.files), rows=manifest.row_count
        )
        return manifest
    logger.info("manifest was written concurrently; keeping it", manifest=folder.manifest_name)
    existing = gcs.read_bytes(bucket, folder.manifest_name, client=storage_client)
    return Manifest.from_json(existing or b"", folder.manifest_name)


def _write_run_record(task: TableExport, bucket: str, folder: RunFolder, storage_client: Any | None) -> None:
    if gcs.write_if_absent(bucket, folder.run_name, task.to_json(), "application/json", client=storage_client):
        logger.info("run record written", object=folder.run_name)
        return
    existing = gcs.read_bytes(bucket, folder.run_name, client=storage_client)
    if existing is None:  # deleted between our write and read: nothing sane to do but retry
        raise TransientError(f"gs://{bucket}/{folder.run_name} vanished while checking it")
    try:
        same = TableExport.from_json(existing) == task
    except RejectedInput:
        same = False
    if not same:
        raise RejectedInput(
            f"{W}.run_id: {task.run_id!r} already names a different export in gs://{bucket}/{folder.run_name}; "
            "a run id cannot be reused with other settings"
        )


def build_manifest(
    task: TableExport, bucket: str, folder: RunFolder, pattern: str, result: ExportResult, storage_client: Any | None
) -> Manifest:
    """The manifest of a finished job: every data file as GCS lists it. Refuses an incomplete set."""
    matcher = shard_regex(pattern)
    listed = [
        o
        for o in gcs.list_prefix(bucket, folder.prefix, client=storage_client)
        if "/" not in o.name[len(folder.prefix) :] and is_data_file(o.name[len(folder.prefix) :])
    ]
    files = [o for o in listed if matcher.match(o.name[len(folder.prefix) :])]
    strays = sorted(o.name for o in listed if o not in files)
    if strays:
        logger.warning("run folder holds data files that are not this export's", objects=strays[:10])
    if result.file_count is not None and len(files) < result.file_count:
        raise TransientError(f"job {result.job_id} reports {result.file_count} files; only {len(files)} are listed yet")
    if result.file_count is not None and len(files) > result.file_count:
        raise PermanentError(
            f"job {result.job_id} reports {result.file_count} files but {len(files)} match {pattern!r} in {folder.prefix}"
        )
    missing = sorted(set(result.sha1) - {o.name for o in files})
    if missing:
        raise TransientError(f"job {result.job_id} wrote {missing[0]} but it is not listed yet")
    if not files:
        raise PermanentError(
            f"job {result.job_id} finished but no file matching {pattern!r} exists under {folder.prefix}"
        )
    return Manifest(
        run_id=task.run_id,
        source=task.source,
        date=task.date.isoformat(),
        bucket=bucket,
        prefix=folder.prefix,
        format=task.format,
        compression=COMPRESSION[task.format],
        file_name=task.file_name,
        destinations=task.destinations,
        job_id=result.job_id,
        row_count=result.row_count,
        schema=result.schema,
        files=tuple(
            ManifestFile(
                name=o.name[len(folder.prefix) :],
                object=o.name,
                size=o.size,
                md5=o.md5,
                crc32c=o.crc32c,
                generation=o.generation,
                sha1=result.sha1.get(o.name) or o.metadata.get("sha1"),
            )
            for o in files
        ),
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        extra={"file_pattern": pattern, "location": result.location},
    )
