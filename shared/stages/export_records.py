"""What a table export writes into its run folder, each write safe to repeat: the run record
(``_run.json``, first), the manifest (``_manifest.json``, last, only for a complete set of files)
and, in the state bucket, the claim that reports a failed run once (see :mod:`shared.stages.export`)."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from shared import log
from shared.config import Config
from shared.errors import PermanentError, RejectedInput, TransientError
from shared.gcp import gcs
from shared.gcp.bigquery import ExportResult
from shared.gcp.bq_jobs import is_retry
from shared.gcp.export_config import COMPRESSION
from shared.layout import RunFolder, is_data_file
from shared.manifest import Manifest, ManifestFile
from shared.messages import TableExport

logger = log.get_logger(__name__)

FAILURE_CLAIM = "_export/failure.json"  # in the state bucket, under the run folder: reported once
SCHEMAS = "_export/schemas/"  # in the state bucket, under the run folder: KeptSchemas
W = "table export"


def shard_regex(pattern: str) -> re.Pattern[str]:
    head, tail = pattern.split("*", 1)
    return re.compile(re.escape(head) + r"\d{12}" + re.escape(tail) + r"\Z")


def write_run_record(task: TableExport, bucket: str, folder: RunFolder, storage_client: Any | None) -> bool:
    """True when the record was written now (the run's first attempt); False when an earlier
    attempt wrote the same one. RejectedInput when another export holds the run id."""
    if gcs.write_if_absent(bucket, folder.run_name, task.to_json(), "application/json", client=storage_client):
        logger.info("run record written", object=folder.run_name)
        return True
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
    return False


def manifest_in(bucket: str, folder: RunFolder, storage_client: Any | None) -> Manifest | None:
    raw = gcs.read_bytes(bucket, folder.manifest_name, client=storage_client)
    return Manifest.from_json(raw, folder.manifest_name) if raw is not None else None


class KeptSchemas:
    """The schemas a run's export jobs started with (:mod:`shared.gcp.job_schema`), in the state
    bucket under the run folder, one object per digest (written once; the same digest is the
    same schema)."""

    def __init__(self, state_bucket: str, folder: RunFolder, client: Any | None = None) -> None:
        self.bucket, self.prefix, self.client = state_bucket, folder.prefix + SCHEMAS, client

    def save(self, digest: str, schema: list[dict[str, Any]]) -> None:
        body = json.dumps(schema).encode()
        gcs.write_if_absent(self.bucket, f"{self.prefix}{digest}.json", body, "application/json", client=self.client)

    def load(self, digest: str) -> list[dict[str, Any]] | None:
        kept = gcs.read_json(self.bucket, f"{self.prefix}{digest}.json", client=self.client)
        return kept if isinstance(kept, list) else None


def failure_claim(folder: RunFolder) -> str:
    """The state bucket object that reports the run's failure once."""
    return folder.prefix + FAILURE_CLAIM


def claim_failure(config: Config, folder: RunFolder, exc: PermanentError, storage_client: Any | None) -> bool:
    """True for the first report of this run's failure (duplicate completion events, redeliveries
    and the sweep all see the failed job; one ``failed`` result is published). The claim is
    deleted again when that report cannot be published (shared.stages.failures.release_if_unreported)."""
    body = json.dumps({"reason": str(exc)}).encode()
    return gcs.write_if_absent(
        config.state_bucket_name, failure_claim(folder), body, "application/json", client=storage_client
    )


def clear_leftovers(
    bucket: str, folder: RunFolder, pattern: str, created_by: dt.datetime, storage_client: Any | None
) -> None:
    """Delete the run's data files (``pattern``, in the run folder: this run's alone) created by
    ``created_by``, the end of a failed attempt: its successor writes to the same names and may
    make fewer files. Each delete is of the generation listed, so a file rewritten since stays."""
    matcher = shard_regex(pattern)
    stale = [
        o
        for o in gcs.list_prefix(bucket, folder.prefix, client=storage_client)
        if matcher.match(o.name[len(folder.prefix) :]) and o.time_created is not None and o.time_created <= created_by
    ]
    for o in stale:
        gcs.delete(bucket, o.name, if_generation_match=o.generation, client=storage_client)
    if stale:
        logger.info("failed attempt's files removed", objects=[o.name for o in stale][:10], count=len(stale))


def this_attempts_files(files: list[gcs.ObjectInfo], result: ExportResult, where: str) -> list[gcs.ObjectInfo]:
    """``files`` without those older than ``result``'s job when it is a ``_retryN`` (an earlier
    attempt's, left behind). PermanentError when they cannot be told apart and the job reports no
    file count: a manifest must not list another attempt's files as this one's."""
    if not is_retry(result.job_id):
        return files
    created = result.created
    if created is None or any(o.time_created is None for o in files):
        if result.file_count is None:
            raise PermanentError(
                f"job {result.job_id} is a retry that reports no file count, and without creation times the "
                f"files in {where} cannot be told apart from an earlier attempt's; no manifest is written"
            )
        return files
    older = [o for o in files if o.time_created is not None and o.time_created < created]
    if older:
        logger.warning(
            "files of an earlier attempt left in the run folder; not listed", objects=[o.name for o in older][:10]
        )
    return [o for o in files if o not in older]


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
    files = this_attempts_files(
        [o for o in listed if matcher.match(o.name[len(folder.prefix) :])], result, f"{folder.prefix}{pattern}"
    )
    strays = sorted(o.name for o in listed if not matcher.match(o.name[len(folder.prefix) :]))
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
        fingerprint=result.fingerprint,
    )
