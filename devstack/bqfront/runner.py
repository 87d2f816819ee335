"""Run one export: rows → shards → objects in the GCS emulator, with BigQuery's shard names.

``write_export`` is the body of both job kinds (extract, EXPORT DATA). It refuses what
BigQuery refuses (nested columns in CSV; an existing destination without ``overwrite`` for
EXPORT DATA; a bucket that does not exist) with JobFailure, and returns how many files and
rows it wrote. Each shard streams into a resumable upload through google-cloud-storage
(STORAGE_EMULATOR_HOST) as its rows are read — ``UPLOAD_CHUNK_BYTES`` in memory at a time, not
the shard — and fake-gcs-server emits its finalize notification when the upload completes, like
GCS does for BigQuery's writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as gexc

from devstack.bqfront.errors import JobFailure
from devstack.bqfront.formats import nested_field, stream_shards
from devstack.bqfront.settings import ExportSpec
from devstack.bqfront.source import Rows

UPLOAD_CHUNK_BYTES = 8 * 1024 * 1024  # a multiple of 256 KiB, as resumable uploads require
CONTENT_TYPES = {
    "CSV": "text/csv",
    "NEWLINE_DELIMITED_JSON": "application/json",
    "AVRO": "application/octet-stream",
    "PARQUET": "application/octet-stream",
}


@dataclass(frozen=True)
class Written:
    files: int
    rows: int
    bytes: int


def check_schema(spec: ExportSpec, schema: list[Any]) -> None:
    """CSV cannot hold RECORD or REPEATED columns: BigQuery's message, reason ``invalid``."""
    if spec.files.format == "CSV":
        nested = nested_field(schema)
        if nested is not None:
            raise JobFailure("invalid", f"Operation cannot be performed on a nested schema. Field: {nested}")


def check_destination(spec: ExportSpec, storage: Any) -> None:
    """The bucket must exist; without overwrite the destination must hold no matching file yet."""
    dest = spec.destination
    try:
        bucket = storage.lookup_bucket(dest.bucket)
    except gexc.GoogleAPICallError as exc:
        raise JobFailure("backendError", f"GCS emulator: {exc.message}") from None
    if bucket is None:
        raise JobFailure("notFound", f"Not found: Bucket {dest.bucket}")
    if spec.overwrite:
        return
    head = dest.name.split("*", 1)[0]
    if any(True for _ in storage.list_blobs(dest.bucket, prefix=head, max_results=1)):
        raise JobFailure(
            "invalid",
            f"Invalid value: destination {dest.uri} already holds files; use overwrite=true to replace them",
        )


def write_export(spec: ExportSpec, rows: Rows, storage: Any, shard_size_bytes: int, seed: str) -> Written:
    """Write every shard of ``rows`` to ``spec.destination``; JobFailure on a refusal or upload error."""
    check_schema(spec, rows.schema)
    check_destination(spec, storage)
    dest = spec.destination
    bucket = storage.bucket(dest.bucket)
    files = total_rows = total_bytes = 0
    size = shard_size_bytes if dest.wildcard else 2**62  # no '*': one file, whatever its size
    content_type = CONTENT_TYPES[spec.files.format]
    names: list[str] = []

    def open_target(index: int) -> Any:
        names.append(dest.shard(index))
        return bucket.blob(names[-1], chunk_size=UPLOAD_CHUNK_BYTES).open(
            "wb", content_type=content_type, ignore_flush=True
        )

    try:
        for count, written in stream_shards(rows.batches, rows.schema, spec.files, size, seed, open_target):
            files, total_rows, total_bytes = files + 1, total_rows + count, total_bytes + written
    except gexc.GoogleAPICallError as exc:
        where = f"gs://{dest.bucket}/{names[-1]}" if names else dest.uri
        raise JobFailure("backendError", f"writing {where}: {exc.message}") from None
    return Written(files, total_rows, total_bytes)
