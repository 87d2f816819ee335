"""The BigQuery front's shard upload: each shard spooled to disk as it is written, then sent whole
by a thread of its own into the GCS emulator (fake-gcs-server) and checked by CRC32C; errors
raised where the writer sees them, nothing left behind; and row groups of a size a reader expects."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.bigquery import SchemaField

from devstack.bqfront.formats import PARQUET_ROW_GROUP_ROWS, FileSettings, write_shards
from devstack.bqfront.runner import SENDER_THREAD, ShardSender, UploadFailed
from devstack.state import StackInfo


@pytest.fixture
def gcs(bare_stack_env: StackInfo) -> Iterator[storage.Bucket]:
    client = storage.Client(project=bare_stack_env.project, credentials=AnonymousCredentials())
    bucket = client.create_bucket(f"front-upload-{uuid.uuid4().hex[:8]}")
    yield bucket


def _senders() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(SENDER_THREAD)]


def test_every_shard_arrives_whole_and_leaves_no_spool_file(gcs: storage.Bucket) -> None:
    shards = {f"part-{i}": os.urandom(1_000_000 + i) for i in range(3)}
    sender = ShardSender(gcs.client, gcs.name, "application/octet-stream")
    spooled: list[Path] = []
    for name, data in shards.items():
        shard = sender.open(name)
        spooled.append(shard.path)
        for start in range(0, len(data), 1000):  # writes far smaller than a shard, as pyarrow's are
            shard.write(memoryview(data)[start : start + 1000])
        shard.close()  # sent while the next is written
    sender.finish()
    for name, data in shards.items():
        blob = gcs.get_blob(name)
        assert blob is not None and blob.size == len(data) and blob.content_type == "application/octet-stream"
        assert hashlib.sha1(blob.download_as_bytes()).hexdigest() == hashlib.sha1(data).hexdigest()
    assert not _senders() and not any(path.exists() for path in spooled)


def test_an_upload_error_reaches_the_writer_naming_the_object(gcs: storage.Bucket) -> None:
    missing = f"no-such-bucket-{uuid.uuid4().hex[:8]}"
    sender = ShardSender(gcs.client, missing, "text/csv")
    shard = sender.open("lost.csv")
    shard.write(b"a,b\n" * 1000)
    shard.close()
    with pytest.raises(UploadFailed, match=f"gs://{missing}/lost.csv: 404"):
        sender.finish()
    assert not _senders() and not shard.path.exists()


def test_a_failed_shard_stops_the_next_one_from_being_sent(gcs: storage.Bucket) -> None:
    sender = ShardSender(gcs.client, f"no-such-bucket-{uuid.uuid4().hex[:8]}", "text/csv")
    first = sender.open("first.csv")
    first.write(b"x\n")
    first.close()
    for sent in list(sender._sent):
        sent.exception()  # the first upload has failed by now
    second = sender.open("second.csv")
    second.write(b"y\n")
    with pytest.raises(UploadFailed, match="first.csv"):
        second.close()
    sender.abort()
    assert not _senders() and not first.path.exists() and not second.path.exists()


def test_abort_leaves_no_object_no_thread_and_no_spool_file(gcs: storage.Bucket) -> None:
    sender = ShardSender(gcs.client, gcs.name, "application/octet-stream")
    shard = sender.open("aborted")
    shard.write(os.urandom(300_000))
    sender.abort()  # the shard was never closed: nothing is sent
    assert not _senders() and not shard.path.exists()
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
