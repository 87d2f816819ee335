"""functions/ingest_sqlite: a snapshot in GCS synced on ingest-requests and on its finalize notification;
each table's outcome on verify-results."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.errors import RejectedInput
from shared.ingest.request import IngestRequest
from shared.topology import INGEST_SNAPSHOTS, VERIFY_RESULTS
from tests.exports.conftest import Puller, pubsub_event
from tests.ingest.conftest import IngestKit

REPO = Path(__file__).resolve().parents[2]


def entry_point() -> Any:
    spec = importlib.util.spec_from_file_location(
        "ingest_sqlite_main", REPO / "functions" / "ingest_sqlite" / "main.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ingest_sqlite


@pytest.fixture
def function_env(ingest: IngestKit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> IngestKit:
    from shared import runtime

    cfg = yaml.safe_load(ingest.stack.config_path.read_text())
    cfg["ingest"] = {
        "sqlite_path": "/nonexistent/on/functions.db",  # the function syncs the snapshot instead
        "dataset": ingest.dataset,
        "hash_key": "k",
        "snapshot_uri": f"gs://{ingest.stack.bucket}-state/snapshots/{ingest.dataset}.sqlite",
        "tables": {"users": {"hashed_columns": ["api_key"]}, "messages": {"mode": "append"}},
    }
    path = tmp_path / "offsite.yaml"
    path.write_text(yaml.safe_dump(cfg))
    monkeypatch.setenv("OFFSITE_CONFIG", str(path))
    runtime.reset()
    return ingest


def upload_snapshot(kit: IngestKit) -> Any:
    from shared.gcp import clients
    from shared.ingest import snapshot

    blob = clients.storage_client().bucket(f"{kit.stack.bucket}-state").blob(f"snapshots/{kit.dataset}.sqlite")
    copy = snapshot.take(str(kit.db), kit.db.with_name("snap.sqlite"))
    blob.upload_from_filename(str(copy))
    return blob


def results(kit: IngestKit, puller: Puller, count: int) -> dict[str, dict[str, Any]]:
    got = puller.pull(lambda m: (m.get("source") or {}).get("dataset") == kit.dataset, count=count)
    return {m["source"]["table"]: m for m in got}


def test_an_ingest_request_syncs_the_snapshot_and_reports_each_table(function_env: IngestKit) -> None:
    kit = function_env
    from tests.exports.conftest import ExportsKit

    puller = ExportsKit(kit.stack, None).subscribe(VERIFY_RESULTS)
    with kit.sqlite() as conn:
        conn.execute("INSERT INTO messages (user_id, body) VALUES (1, 'a'), (2, 'b')")
        conn.execute("INSERT INTO users (id, name, updated_at) VALUES (1, 'ada', '2025-01-01 00:00:00')")
    upload_snapshot(kit)

    entry_point()(pubsub_event("pubsub_ingest_request.json", b'{"tables": ["messages"], "full": true}'))
    (only,) = results(kit, puller, 1).values()
    assert only["status"] == "in_sync" and only["stage"] == "ingest_sqlite"
    assert (only["rows_read"], only["rows_merged"], only["watermark"]) == (2, 2, "2")
    assert [m["id"] for m in kit.rows("messages")] == [1, 2]
    assert "users" not in kit.tables()

    with kit.sqlite() as conn:
        conn.execute("INSERT INTO messages (user_id, body) VALUES (3, 'c')")
    blob = upload_snapshot(kit)
    blob.reload()
    notification = pubsub_event("pubsub_ingest_request.json", b"{}")
    notification.data["message"]["attributes"] = {
        "eventType": "OBJECT_FINALIZE",
        "bucketId": blob.bucket.name,
        "objectId": blob.name,
        "objectGeneration": str(blob.generation),
        "payloadFormat": "JSON_API_V1",
    }
    notification["source"] = notification["source"].replace("ingest-requests", INGEST_SNAPSHOTS)
    entry_point()(notification)
    reported = results(kit, puller, 2)
    assert reported["messages"]["rows_read"] == 1
    assert reported["users"]["rows_read"] == 1
    assert [m["id"] for m in kit.rows("messages")] == [1, 2, 3]


def test_a_bad_ingest_request_is_rejected_and_reported(function_env: IngestKit) -> None:
    kit = function_env
    from tests.exports.conftest import ExportsKit

    puller = ExportsKit(kit.stack, None).subscribe(VERIFY_RESULTS)
    body = json.dumps({"tables": ["users; DROP"], "full": "yes", "extra": 1}).encode()
    entry_point()(pubsub_event("pubsub_ingest_request.json", body))
    (result,) = puller.pull(lambda m: m.get("stage") == "ingest_sqlite" and m.get("status") == "rejected", count=1)
    assert "ingest request.tables: 'users; DROP' is not a valid name" in result["reason"]
    assert "ingest request.full: expected true or false, got 'yes'" in result["reason"]
    assert "unknown field 'extra'" in result["reason"]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"[]", "expected a JSON object"),
        (b'{"tables": []}', "ingest request.tables: must not be empty"),
        (b'{"full": 1}', "ingest request.full: expected true or false, got 1"),
        (b'{"schema_version": 2}', "schema_version: 2 is not supported"),
    ],
)
def test_ingest_requests_are_validated_like_export_requests(body: bytes, problem: str) -> None:
    with pytest.raises(RejectedInput, match=problem.replace("(", r"\(").replace(")", r"\)")):
        IngestRequest.from_json(body)
    assert IngestRequest.from_json(b'{"tables": "users, messages", "full": true}').tables == ("users", "messages")


def test_snapshot_is_a_consistent_copy(tmp_path: Path) -> None:
    from shared.ingest import snapshot

    db = tmp_path / "a.db"
    conn = sqlite3.connect(db)
    conn.executescript("PRAGMA journal_mode=WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1), (2);")
    conn.commit()  # committed rows in the WAL, not yet checkpointed into the main file
    copy = snapshot.take(str(db), tmp_path / "copy.db")
    assert sqlite3.connect(copy).execute("SELECT COUNT(*) FROM t").fetchone() == (2,)
    conn.close()


@pytest.mark.parametrize("limit", ["budget_s", "invocation"])
def test_tables_that_would_not_end_in_time_continue_in_a_new_invocation(function_env: IngestKit, limit: str) -> None:
    """With no time left after the first table, the others are not started: they go back on
    ingest-requests as one request of the same run, which the next invocation syncs. Before, every
    table ran in the one invocation, and the 540 s timeout cut the run short. The time limit is
    the invocation's by default (the runner's, a minute before the timeout), or ``budget_s``."""
    from shared import retry, runtime
    from shared.stages.ingest import run_snapshot
    from shared.topology import INGEST_REQUESTS
    from tests.exports.conftest import ExportsKit

    kit = function_env
    exports = ExportsKit(kit.stack, None)
    reported, requests = exports.subscribe(VERIFY_RESULTS), exports.subscribe(INGEST_REQUESTS)
    with kit.sqlite() as conn:
        conn.execute("INSERT INTO messages (user_id, body) VALUES (1, 'a')")
        conn.execute("INSERT INTO users (id, name, updated_at) VALUES (1, 'ada', '2025-01-01 00:00:00')")
    upload_snapshot(kit)

    if limit == "budget_s":
        outcomes = run_snapshot(runtime.config(), tables=None, full=True, run_id="nightly-1", budget_s=0.0)
    else:
        with retry.waits_end_by(time.monotonic()):  # as the runner sets it, with the invocation's time spent
            outcomes = run_snapshot(runtime.config(), tables=None, full=True, run_id="nightly-1")
    first, second = (o.table for o in outcomes)
    assert [o.status for o in outcomes] == ["synced", "deferred"]
    assert list(results(kit, reported, 1)) == [first]
    (continuation,) = requests.pull(lambda m: m.get("run_id") == "nightly-1", count=1)
    assert (continuation["tables"], continuation["full"]) == ([second], True)
    assert second not in kit.tables()

    body = {k: v for k, v in continuation.items() if k != "_attributes"}  # the Puller's, not the message's
    entry_point()(pubsub_event("pubsub_ingest_request.json", json.dumps(body).encode()))
    assert list(results(kit, reported, 2)) == [first, second]
    assert kit.rows(second)


def test_a_snapshot_too_large_for_the_functions_memory_is_refused_before_the_download(function_env: IngestKit) -> None:
    """/tmp is memory in a function: a snapshot over half of it would take the instance down with
    every redelivery. It is a permanent error naming the snapshot and both sizes instead."""
    from shared import runtime
    from shared.errors import PermanentError
    from shared.stages.ingest import run_snapshot

    size = upload_snapshot(function_env).size
    with pytest.raises(PermanentError, match=rf"is {size:,} bytes; .* takes at most {size - 1:,}"):
        run_snapshot(runtime.config(), tables=None, full=True, max_snapshot_bytes=size - 1)
    assert function_env.tables() == []  # nothing synced


def test_no_snapshot_yet_is_refused_saying_how_one_gets_there(function_env: IngestKit) -> None:
    """The function syncs the snapshot the app's host pushes; before the first push, the failure
    says so (as the local stack's sample app shows before `offsite ingest push`)."""
    from shared import runtime
    from shared.errors import PermanentError
    from shared.stages.ingest import run_snapshot

    with pytest.raises(PermanentError) as refused:
        run_snapshot(runtime.config(), tables=None, full=False)
    assert str(refused.value) == (
        f"ingest.snapshot_uri: gs://{function_env.stack.bucket}-state/snapshots/{function_env.dataset}.sqlite does not"
        " exist: the app's host uploads it with `offsite ingest push` (docs/ingest.md), or sync there with"
        " `offsite ingest run`"
    )
    assert function_env.tables() == []


def test_a_snapshot_that_is_not_a_sqlite_database_is_refused_naming_it(function_env: IngestKit) -> None:
    """An upload that is not a SQLite database (a wrong file, a truncated header): no redelivery
    can read it, so it is a permanent error naming the object and its generation, and saying how
    a good one gets there. Before, SQLite's DatabaseError went up unmapped: "unexpected failure;
    will be retried" five times, then a dead letter whose reason named no snapshot."""
    from shared import runtime
    from shared.errors import PermanentError
    from shared.gcp import clients
    from shared.stages.ingest import run_snapshot

    uri = f"gs://{function_env.stack.bucket}-state/snapshots/{function_env.dataset}.sqlite"
    blob = clients.storage_client().bucket(f"{function_env.stack.bucket}-state").blob(uri.split("/", 3)[3])
    blob.upload_from_string(b"id,name\n1,ada\n" * 300)  # a CSV export, not the database
    with pytest.raises(PermanentError) as refused:
        run_snapshot(runtime.config(), tables=None, full=False)
    assert str(refused.value) == (
        f"ingest.snapshot_uri: {uri} (generation {blob.generation}) is not a SQLite database (file is not a"
        " database); upload a consistent copy with `offsite ingest push`"
    )
    assert function_env.tables() == []


def test_ingest_run_refuses_a_file_that_is_not_a_sqlite_database(tmp_path: Path) -> None:
    from shared.ingest.plan import NotSqlite, connect

    path = tmp_path / "app.db"
    path.write_bytes(b"SQLite format 2\x00" + b"\x00" * 4080)  # not the format SQLite 3 writes
    with pytest.raises(
        NotSqlite, match=rf"ingest.sqlite_path: '{path}' is not a SQLite database \(file is not a database\)"
    ):
        connect(str(path))
