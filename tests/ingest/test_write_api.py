"""The Storage Write API load path on the local stack (bqemulator's gRPC BigQueryWrite service),
judged by google-cloud-bigquery-storage's own BigQueryWriteClient: pending stream, AppendRows
with offsets, finalize, one BatchCommitWriteStreams."""

from __future__ import annotations

import decimal
from typing import Any

import pytest

from shared.errors import PermanentError
from shared.ingest import target, write_api
from shared.ingest.engine import FAULT_BEFORE_COMMIT
from shared.ingest.plan import connect, plan_table
from shared.ingest.source import TableReader
from shared.ingest.state import SyncState
from tests.ingest.conftest import IngestKit

TYPED = """
CREATE TABLE typed (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    amount TEXT,
    ratio REAL,
    label TEXT,
    blob BLOB,
    active BOOLEAN,
    born DATE,
    local_dt DATETIME,
    at_time TIME,
    seen_at TEXT,
    doc JSON
);
"""
TYPED_ROWS = [
    (
        1,
        "12345678901234567890.123456789",
        1.5,
        'héllo, "world"\n',
        b"\x00\xff",
        1,
        "2025-01-08",
        "2025-01-08 10:00:00.5",
        "12:00:00.25",
        "2025-01-08T10:00:00.000001Z",
        '{"a": [1, 2]}',
    ),
    (
        2,
        "-0.000000001",
        -2.0,
        "",
        b"",
        0,
        "0001-01-01",
        "9999-12-31 23:59:59.999999",
        "00:00:00",
        "1970-01-01 00:00:00",
        "null",
    ),
    (3, None, None, None, None, None, None, None, None, None, None),
    (
        4,
        "42",
        0.0,
        "x" * 1000,
        bytes(range(256)),
        "true",
        "1969-12-31",
        "1969-12-31 23:59:59",
        "23:59:59.999999",
        "1970-01-02 00:00:00+00:00",
        "[]",
    ),
]


def add_typed(kit: IngestKit) -> None:
    with kit.sqlite() as conn:
        conn.executescript(TYPED)
        conn.executemany(f"INSERT INTO typed VALUES ({', '.join('?' * 11)})", TYPED_ROWS)


def add_messages(kit: IngestKit, n: int) -> None:
    with kit.sqlite() as conn:
        conn.executemany("INSERT INTO messages (user_id, body) VALUES (?, ?)", [(1, f"m{i}") for i in range(n)])


def typed_rows(kit: IngestKit) -> list[dict[str, Any]]:
    rows = kit.rows("typed")
    for row in rows:
        row["doc"] = None if row["doc"] is None else str(row["doc"])
    return rows


def test_append_and_merge_tables_sync_through_the_write_api_as_through_load_jobs(ingest: IngestKit) -> None:
    add_typed(ingest)
    add_messages(ingest, 3)
    settings = ingest.settings(
        tables={"messages": {"mode": "append"}, "typed": {"json_columns": ["doc"], "types": {"amount": "NUMERIC"}}}
    )
    first = ingest.run(settings.model_copy(update={"load_path": "write_api"}))
    assert {(o.table, o.status, o.load_path, o.rows_read) for o in first.values()} >= {
        ("typed", "synced", "write_api", 4),
        ("messages", "synced", "write_api", 3),
    }
    through_write_api = typed_rows(ingest)
    assert through_write_api[0]["amount"] == decimal.Decimal("12345678901234567890.123456789")
    assert through_write_api[0]["seen_at"].isoformat() == "2025-01-08T10:00:00.000001+00:00"
    assert through_write_api[1]["born"].isoformat() == "0001-01-01"
    assert through_write_api[3]["blob"] == bytes(range(256))

    # The same rows through the Parquet/load-job path land identically (reset re-reads every row).
    state = SyncState(ingest.client, ingest.stack.project, ingest.dataset)
    state.reset("typed")
    ingest.client.query(f"DELETE FROM `{ingest.stack.project}.{ingest.dataset}.typed` WHERE TRUE").result()
    again = ingest.run(settings.model_copy(update={"load_path": "load_job"}), tables=["typed"])
    assert (again["typed"].load_path, again["typed"].rows_read) == ("load_job", 4)
    assert typed_rows(ingest) == through_write_api

    # Incremental through the write API: an update (merge) and new rows (append) arrive once.
    with ingest.sqlite() as conn:
        conn.execute("INSERT INTO typed (id, label) VALUES (5, 'five')")
        conn.execute("UPDATE typed SET label = 'changed' WHERE id = 5")
    add_messages(ingest, 2)
    second = ingest.run(settings.model_copy(update={"load_path": "write_api"}))
    assert (second["messages"].rows_read, second["typed"].rows_read) == (2, 1)
    assert [m["id"] for m in ingest.rows("messages")] == [1, 2, 3, 4, 5]
    assert [r["label"] for r in ingest.rows("typed")][-1] == "changed"
    assert not [t for t in ingest.tables() if t.startswith("_offsite_stage_")]


def test_a_crash_before_the_commit_leaves_nothing_and_the_rerun_adds_no_duplicate(ingest: IngestKit) -> None:
    add_messages(ingest, 5)
    settings = ingest.settings(load_path="write_api")
    ingest.run(settings, tables=["messages"])
    add_messages(ingest, 4)

    crashed = ingest.run(settings, tables=["messages"], faults=frozenset({FAULT_BEFORE_COMMIT}))
    assert crashed["messages"].status == "failed"
    assert "before the commit" in (crashed["messages"].error or "")
    assert [m["id"] for m in ingest.rows("messages")] == [1, 2, 3, 4, 5]
    state = SyncState(ingest.client, ingest.stack.project, ingest.dataset).get("messages")
    assert (state.watermark, state.lease_owner) == (5, None)
    assert not [t for t in ingest.tables() if t.startswith("_offsite_stage_")]

    rerun = ingest.run(settings, tables=["messages"])
    assert (rerun["messages"].status, rerun["messages"].rows_read) == ("synced", 4)
    assert [m["id"] for m in ingest.rows("messages")] == list(range(1, 10))


def _staged(kit: IngestKit, n: int, **kw: Any) -> tuple[write_api.PendingStager, str]:
    """A PendingStager on a fresh staging table, with ``n`` messages added (not committed)."""
    add_messages(kit, n)
    conn = connect(str(kit.db))
    plan = plan_table(conn, kit.settings(), "messages")
    staging = target.staging_id(kit.stack.project, kit.dataset, "messages", "probe")
    kit.client.create_dataset(kit.dataset, exists_ok=True)

    def create() -> None:
        target.create_staging(kit.client, staging, plan, 10)

    stager = write_api.PendingStager(plan, write_api.client_from_env(), staging, create, **kw)
    for batch in TableReader(conn, plan, watermark=None, full=False, batch_rows=4, hash_key=b"").batches():
        stager.add(batch)
    conn.close()
    return stager, staging


def _count(kit: IngestKit, table: str) -> int:
    return int(next(iter(kit.client.query(f"SELECT COUNT(*) AS n FROM `{table}`").result()))["n"])


def test_staged_rows_appear_only_at_the_commit(ingest: IngestKit) -> None:
    seen: list[int] = []
    stager, staging = _staged(ingest, 10, request_bytes=12, before_commit=lambda: seen.append(_count(ingest, staging)))
    assert stager.requests >= 5  # several AppendRows requests (12-byte bound), at increasing offsets
    assert _count(ingest, staging) == 0  # appended, not committed: nothing in the staging table
    stager.flush()
    stager.close()
    assert seen == [0]  # finalized, still nothing before the commit
    assert _count(ingest, staging) == 10


def test_a_resent_append_is_stored_once(ingest: IngestKit) -> None:
    """A request resent at the same offset (a broken connection) answers ALREADY_EXISTS and is not stored twice."""
    stager, staging = _staged(ingest, 6)
    conn = connect(str(ingest.db))
    plan = plan_table(conn, ingest.settings(), "messages")
    batch = next(TableReader(conn, plan, watermark=None, full=False, batch_rows=6, hash_key=b"").batches())
    conn.close()
    stager.sent -= 6  # as if the answer to the last request was lost: resend it at its offset
    for rows in write_api.pack(write_api.encode(plan, stager.row_class, batch)):
        stager._append(rows)
    stager.flush()
    stager.close()
    assert _count(ingest, staging) == 6


def test_an_uncommitted_stream_with_a_gap_fails_without_writing(ingest: IngestKit) -> None:
    stager, staging = _staged(ingest, 3)
    stager.sent += 5  # an offset past the stream's end: OUT_OF_RANGE, not retried
    with pytest.raises(PermanentError, match="offset 8"):
        stager._append([b""])
    stager.close()
    assert _count(ingest, staging) == 0


def test_append_requests_stay_under_the_10_mb_limit() -> None:
    rows = [b"x" * 3_000_000] * 7 + [b"y" * 10] * 1000
    groups = list(write_api.pack(rows))
    assert sum(len(g) for g in groups) == len(rows)
    assert [r for g in groups for r in g] == rows
    assert all(sum(map(len, g)) <= write_api.REQUEST_BYTES for g in groups)
    assert len(groups) == 4  # 2 + 2 + 2 big rows (a third passes 8 MiB), then the last one with the small ones
    with pytest.raises(PermanentError, match="10000000"):
        list(write_api.pack([b"z" * 10_000_000]))


def test_the_row_descriptor_follows_the_staging_schema(ingest: IngestKit) -> None:
    from google.protobuf import descriptor_pb2

    add_typed(ingest)
    plan = plan_table(
        connect(str(ingest.db)),
        ingest.settings(tables={"typed": {"json_columns": ["doc"], "types": {"amount": "NUMERIC"}}}),
        "typed",
    )
    descriptor = write_api.row_descriptor(plan)
    kinds = {f.name: descriptor_pb2.FieldDescriptorProto.Type.Name(f.type) for f in descriptor.field}
    assert kinds == {
        "id": "TYPE_INT64",
        "amount": "TYPE_STRING",
        "ratio": "TYPE_DOUBLE",
        "label": "TYPE_STRING",
        "blob": "TYPE_BYTES",
        "active": "TYPE_BOOL",
        "born": "TYPE_INT32",
        "local_dt": "TYPE_STRING",
        "at_time": "TYPE_STRING",
        "seen_at": "TYPE_INT64",
        "doc": "TYPE_STRING",
    }
    assert {f.label for f in descriptor.field} == {descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL}


def test_an_unknown_stream_is_a_permanent_error_naming_the_staging_table(ingest: IngestKit) -> None:
    stager, staging = _staged(ingest, 2)
    stager.close()
    unknown = str(stager.stream_name).rsplit("/", 1)[0] + "/0000000000000000"
    with pytest.raises(PermanentError, match=f"finalizing for {staging}: not found"):
        stager._call(lambda: stager.client.finalize_write_stream(name=unknown), "finalizing")


def _client_without_the_write_api(kit: IngestKit) -> Any:
    """A BigQueryWriteClient on a real gRPC server that has no BigQueryWrite service (the Pub/Sub emulator)."""
    import grpc
    from google.cloud.bigquery_storage_v1 import BigQueryWriteClient
    from google.cloud.bigquery_storage_v1.services.big_query_write.transports import BigQueryWriteGrpcTransport

    return BigQueryWriteClient(
        transport=BigQueryWriteGrpcTransport(channel=grpc.insecure_channel(kit.stack.pubsub_host))
    )


def test_auto_falls_back_to_load_jobs_where_the_write_api_is_not_served(ingest: IngestKit) -> None:
    from shared.ingest.engine import IngestRun, sync

    add_messages(ingest, 3)
    run = IngestRun(
        ingest.settings(), ingest.client, ingest.stack.project, write_client=_client_without_the_write_api(ingest)
    )
    outcomes = {o.table: o for o in sync(run)}
    assert (outcomes["messages"].status, outcomes["messages"].load_path) == ("synced", "load_job")
    assert [m["id"] for m in ingest.rows("messages")] == [1, 2, 3]
    assert not [t for t in ingest.tables() if t.startswith("_offsite_stage_")]

    add_messages(ingest, 1)
    strict = ingest.settings(load_path="write_api")
    run = IngestRun(strict, ingest.client, ingest.stack.project, write_client=_client_without_the_write_api(ingest))
    failed = {o.table: o for o in sync(run)}["messages"]
    assert failed.status == "failed"
    assert "Storage Write API is not available" in (failed.error or "")
    assert [m["id"] for m in ingest.rows("messages")] == [1, 2, 3]


def test_a_staging_table_expires_by_itself_after_staging_expiration_minutes(ingest: IngestKit) -> None:
    """A crash that skips the staging table's deletion leaves no table for ever: BigQuery drops it
    at its expiration time, ``staging_expiration_minutes`` after it was created."""
    import datetime as dt

    add_messages(ingest, 1)
    plan = plan_table(connect(str(ingest.db)), ingest.settings(), "messages")
    staging = target.staging_id(ingest.stack.project, ingest.dataset, "messages", "expiry")
    ingest.client.create_dataset(ingest.dataset, exists_ok=True)
    before = dt.datetime.now(dt.UTC)
    target.create_staging(ingest.client, staging, plan, 120)
    after = dt.datetime.now(dt.UTC)
    expires = ingest.client.get_table(staging).expires
    ingest.client.delete_table(staging)
    assert expires is not None
    assert before + dt.timedelta(minutes=120) - dt.timedelta(seconds=1) <= expires
    assert expires <= after + dt.timedelta(minutes=120) + dt.timedelta(seconds=1)
