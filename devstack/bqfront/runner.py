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

import queue
import threading
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud.storage.exceptions import InvalidResponse

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


class BackgroundUpload:
    """A write-only file that hands whole ``chunk_bytes`` chunks to a thread which writes them into
    ``target`` (a resumable upload, one request per chunk) while the writer goes on. At most one
    chunk waits between the writer and the sender. An error of the sender is raised by the next
    ``write`` or by ``close``; ``abort`` stops the sender without finishing the upload (the
    object is then never created)."""

    _FINISH = object()  # tells the sender to finish the upload

    def __init__(self, target: Any, chunk_bytes: int = UPLOAD_CHUNK_BYTES) -> None:
        self._target = target
        self._chunk_bytes = chunk_bytes
        self._buffer = bytearray()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1)  # a chunk, _FINISH, or None: stop
        self._error: Exception | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._send, name="bqfront-upload", daemon=True)
        self._thread.start()

    def _send(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drain: the writer learns of the error on its next write
            try:
                if chunk is self._FINISH:
                    self._target.close()
                else:
                    self._target.write(chunk)
            except Exception as exc:  # noqa: BLE001 - handed to the writer, which raises it
                self._error = exc

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._raise_error()
        self._buffer += data  # pyarrow writes pieces of a few kB: gathered here, sent whole
        if len(self._buffer) >= self._chunk_bytes:
            self._queue.put(self._buffer)  # handed over whole, not copied
            self._buffer = bytearray()
        return len(data)

    def close(self) -> None:
        """Send what is left, finish the upload, wait for it; raise the sender's error if any."""
        if self._closed:
            return
        self._closed = True
        if self._buffer:
            self._queue.put(self._buffer)
            self._buffer = bytearray()
        self._queue.put(self._FINISH)
        self._queue.put(None)
        self._thread.join()
        self._raise_error()

    def abort(self) -> None:
        """Stop the sender; the upload is left unfinished (GCS discards it)."""
        if self._closed:
            return
        self._closed = True
        self._buffer.clear()
        self._error = self._error or RuntimeError("upload aborted")
        self._queue.put(None)
        self._thread.join()

    @property
    def closed(self) -> bool:
        return self._closed


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
    uploads: list[BackgroundUpload] = []

    def open_target(index: int) -> Any:
        names.append(dest.shard(index))
        blob = bucket.blob(names[-1], chunk_size=UPLOAD_CHUNK_BYTES)
        uploads.append(BackgroundUpload(blob.open("wb", content_type=content_type, ignore_flush=True)))
        return uploads[-1]

    try:
        for count, written in stream_shards(rows.batches, rows.schema, spec.files, size, seed, open_target):
            files, total_rows, total_bytes = files + 1, total_rows + count, total_bytes + written
    except (gexc.GoogleAPICallError, InvalidResponse) as exc:  # the latter: a resumable upload's answer
        where = f"gs://{dest.bucket}/{names[-1]}" if names else dest.uri
        raise JobFailure("backendError", f"writing {where}: {getattr(exc, 'message', exc)}") from None
    finally:
        for upload in uploads:
            upload.abort()  # a shard left open by a failure: its sender thread stops
    return Written(files, total_rows, total_bytes)
