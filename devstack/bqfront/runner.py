"""Run one export: rows → shards → objects in the GCS emulator, with BigQuery's shard names.

``write_export`` is the body of both job kinds (extract, EXPORT DATA). It refuses what
BigQuery refuses (nested columns in CSV; an existing destination without ``overwrite`` for
EXPORT DATA; a bucket that does not exist) with JobFailure, and returns how many files and
rows it wrote. Each shard is written as its rows are read into a spool file on local disk
(memory holds only pyarrow's small writes; the stack gives the front a spool directory of its own,
emptied when the front starts, so a front killed mid-export leaves nothing behind for long), then sent to
fake-gcs-server in one streamed request (CRC32C computed on the way and compared with the
stored object's) by a thread of its own while the next shard is written
(:class:`ShardSender`), and fake-gcs-server emits its finalize notification when the object is
complete, like GCS does for BigQuery's writes. One request per shard, not a resumable upload in
chunks: fake-gcs-server re-assembles a resumable upload by copying all it received so far on
every chunk, so it took a 64 MB shard at 30–60 MB/s in 8–32 MiB chunks and 120–140 MB/s whole.
Spooled, not streamed as written: fake-gcs-server answers no other request while it reads an
upload's body, so a shard streamed over its writing would stall every reader of the stack's GCS.
"""

from __future__ import annotations

import base64
import os
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import google_crc32c
from google.api_core import exceptions as gexc

from devstack.bqfront.errors import JobFailure
from devstack.bqfront.formats import nested_field, stream_shards
from devstack.bqfront.settings import ExportSpec
from devstack.bqfront.source import Rows

CONTENT_TYPES = {
    "CSV": "text/csv",
    "NEWLINE_DELIMITED_JSON": "application/json",
    "AVRO": "application/octet-stream",
    "PARQUET": "application/octet-stream",
}
SENDER_THREAD = "bqfront-upload"
SPOOL_PREFIX, SPOOL_SUFFIX = "bqfront-shard-", ".spool"


@dataclass(frozen=True)
class Written:
    files: int
    rows: int
    bytes: int


class UploadFailed(Exception):
    """The GCS emulator did not store a shard as it was written (its status and answer)."""


class SpooledShard:
    """A write-only file for one shard: bytes go to a spool file on local disk as they come;
    ``close`` hands the file to the sender."""

    def __init__(self, sender: ShardSender, name: str, spool_dir: Path | None) -> None:
        self.name = name
        self._sender = sender
        fd, path = tempfile.mkstemp(prefix=SPOOL_PREFIX, suffix=SPOOL_SUFFIX, dir=spool_dir)
        self.path = Path(path)
        self._file = os.fdopen(fd, "wb")
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._file.write(data)
        self.size += len(data)
        return len(data)

    def close(self) -> None:
        if self._file.closed:
            return
        self._file.close()
        self._sender.send(self)

    def discard(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


class _Checksummed:
    """A file read as an HTTP body, with the CRC32C of what was read (computed by the sender
    thread, off the writer's path)."""

    def __init__(self, file: Any) -> None:
        self._file = file
        self._crc = google_crc32c.Checksum()

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._file.read(size)
        self._crc.update(data)
        return data

    @property
    def crc32c(self) -> str:
        return base64.b64encode(self._crc.digest()).decode()


class ShardSender:
    """Sends the closed shards of one export to ``bucket``, one at a time on a thread of its own,
    each as one ``uploadType=media`` request streamed from its spool file; the stored object's
    CRC32C must be the one written. ``finish`` waits for every shard and raises the first
    failure; ``abort`` sends nothing more. Spool files are removed either way."""

    def __init__(self, storage: Any, bucket: str, content_type: str, spool_dir: Path | None = None) -> None:
        self._spool_dir = spool_dir
        self._http = storage._http  # the client's session: the emulator needs no credentials
        self._bucket = bucket
        self._url = f"{storage._connection.API_BASE_URL}/upload/storage/v1/b/{bucket}/o"
        self._content_type = content_type
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=SENDER_THREAD)
        self._shards: list[SpooledShard] = []
        self._sent: list[Future[None]] = []

    def open(self, name: str) -> SpooledShard:
        self._shards.append(SpooledShard(self, name, self._spool_dir))
        return self._shards[-1]

    def send(self, shard: SpooledShard) -> None:
        for sent in self._sent:  # an earlier shard that failed stops the export now
            error = sent.exception() if sent.done() else None
            if error is not None:
                raise error
        self._sent.append(self._pool.submit(self._upload, shard))

    def _upload(self, shard: SpooledShard) -> None:
        try:
            with shard.path.open("rb") as spool:
                body = _Checksummed(spool)
                answer = self._http.post(
                    self._url,
                    params={"uploadType": "media", "name": shard.name},
                    data=body,
                    headers={"Content-Type": self._content_type, "Content-Length": str(shard.size)},
                )
            where = f"gs://{self._bucket}/{shard.name}"
            if answer.status_code >= 300:
                raise UploadFailed(f"writing {where}: {answer.status_code} {answer.text.strip()[:300]}")
            stored, sent = answer.json().get("crc32c"), body.crc32c
            if stored != sent:
                raise UploadFailed(f"writing {where}: stored with CRC32C {stored}, sent {sent}")
        finally:
            shard.path.unlink(missing_ok=True)

    def finish(self) -> None:
        try:
            for sent in self._sent:
                sent.result()
        finally:
            self.abort()

    def abort(self) -> None:
        for sent in self._sent:
            sent.cancel()
        self._pool.shutdown(wait=True)
        for shard in self._shards:
            shard.discard()


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


def clear_spool(spool_dir: Path) -> int:
    """Create ``spool_dir`` and remove the spool files a killed front left in it; how many."""
    spool_dir.mkdir(parents=True, exist_ok=True)
    leftovers = list(spool_dir.glob(f"{SPOOL_PREFIX}*{SPOOL_SUFFIX}"))
    for leftover in leftovers:
        leftover.unlink(missing_ok=True)
    return len(leftovers)


def write_export(
    spec: ExportSpec, rows: Rows, storage: Any, shard_size_bytes: int, seed: str, spool_dir: Path | None = None
) -> Written:
    """Write every shard of ``rows`` to ``spec.destination`` (spooling each under ``spool_dir``,
    the system's temp directory by default); JobFailure on a refusal or upload error."""
    check_schema(spec, rows.schema)
    check_destination(spec, storage)
    dest = spec.destination
    files = total_rows = total_bytes = 0
    size = shard_size_bytes if dest.wildcard else 2**62  # no '*': one file, whatever its size
    sender = ShardSender(storage, dest.bucket, CONTENT_TYPES[spec.files.format], spool_dir)
    names: list[str] = []

    def open_target(index: int) -> Any:
        names.append(dest.shard(index))
        return sender.open(names[-1])

    try:
        for count, written in stream_shards(rows.batches, rows.schema, spec.files, size, seed, open_target):
            files, total_rows, total_bytes = files + 1, total_rows + count, total_bytes + written
        sender.finish()
    except UploadFailed as exc:
        raise JobFailure("backendError", str(exc)) from None
    except (gexc.GoogleAPICallError, OSError) as exc:  # the emulator unreachable, the spool disk full
        where = f"gs://{dest.bucket}/{names[-1]}" if names else dest.uri
        raise JobFailure("backendError", f"writing {where}: {getattr(exc, 'message', exc)}") from None
    finally:
        sender.abort()  # a failure: nothing more is sent, no spool file is left
    return Written(files, total_rows, total_bytes)
