"""The BigQuery front's shard upload: chunks sent by a thread of their own into a real resumable
upload (google-cloud-storage → fake-gcs-server), errors raised where the writer sees them, and
row groups of a size a reader expects."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.bigquery import SchemaField
from google.cloud.storage.exceptions import InvalidResponse

from devstack.bqfront.formats import PARQUET_ROW_GROUP_ROWS, FileSettings, write_shards
from devstack.bqfront.runner import BackgroundUpload
from devstack.state import StackInfo

CHUNK = 256 * 1024  # the smallest chunk a resumable upload takes: many chunks from a few MB


@pytest.fixture
def gcs(bare_stack_env: StackInfo) -> Iterator[storage.Bucket]:
    client = storage.Client(project=bare_stack_env.project, credentials=AnonymousCredentials())
    bucket = client.create_bucket(f"front-upload-{uuid.uuid4().hex[:8]}")
    yield bucket


def _senders() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "bqfront-upload"]


def _open(bucket: storage.Bucket, name: str) -> Any:
    return bucket.blob(name, chunk_size=CHUNK).open("wb", ignore_flush=True)


def test_every_byte_arrives_in_order_in_whole_chunks(gcs: storage.Bucket) -> None:
    data = os.urandom(3 * CHUNK + 12_345)
    upload = BackgroundUpload(_open(gcs, "whole"), chunk_bytes=CHUNK)
    for start in range(0, len(data), 1000):  # writes far smaller than a chunk, as pyarrow's are
        upload.write(memoryview(data)[start : start + 1000])
    upload.close()
    blob = gcs.get_blob("whole")
    assert blob is not None and blob.size == len(data)
    assert hashlib.sha1(blob.download_as_bytes()).hexdigest() == hashlib.sha1(data).hexdigest()
    assert not _senders()


def test_an_upload_error_reaches_the_writer(gcs: storage.Bucket) -> None:
    missing = gcs.client.bucket(f"no-such-bucket-{uuid.uuid4().hex[:8]}")
    upload = BackgroundUpload(_open(missing, "lost"), chunk_bytes=CHUNK)
    try:
        with pytest.raises(InvalidResponse, match="404"):
            for _ in range(64):  # the sender fails on the first chunk; a later write or close says so
                upload.write(b"x" * CHUNK)
            upload.close()
    finally:
        upload.abort()
    assert not _senders()


def test_abort_leaves_no_object_and_no_thread(gcs: storage.Bucket) -> None:
    upload = BackgroundUpload(_open(gcs, "aborted"), chunk_bytes=CHUNK)
    upload.write(os.urandom(2 * CHUNK + 1))
    upload.abort()
    assert not _senders()
    assert gcs.get_blob("aborted") is None


def test_parquet_row_groups_hold_many_rows() -> None:
    """Row groups of PARQUET_ROW_GROUP_ROWS rows, not one per internal batch (a reader pays per
    row group; BigQuery's own files are not cut that fine)."""
    rows = 3 * PARQUET_ROW_GROUP_ROWS + 17
    data = pa.table({"id": pa.array(range(rows), pa.int64())})
    schema = [SchemaField("id", "INTEGER")]
    [(blob, count)] = list(write_shards([data], schema, FileSettings("PARQUET", "SNAPPY"), 2**40, "s"))
    meta = pq.read_metadata(io.BytesIO(blob))
    assert count == rows
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [PARQUET_ROW_GROUP_ROWS] * 3 + [17]
    assert pq.read_table(io.BytesIO(blob)).column("id").to_pylist() == list(range(rows))
