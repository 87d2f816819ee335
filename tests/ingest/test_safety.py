"""What must never happen: duplicates or gaps after a crash, two runs applying one table,
rows missed while the app writes, hashed values in clear anywhere."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap

import pytest

from shared import log
from shared.ingest import apply as applying
from shared.ingest.engine import FAULT_AFTER_MERGE
from shared.ingest.plan import connect, plan_table
from shared.ingest.state import SyncState
from tests.ingest.conftest import IngestKit


def add_messages(kit: IngestKit, n: int) -> None:
    with kit.sqlite() as conn:
        conn.executemany("INSERT INTO messages (user_id, body) VALUES (?, ?)", [(1, f"m{i}") for i in range(n)])


def test_crash_between_merge_and_watermark_then_rerun_gives_no_duplicate_and_no_gap(ingest: IngestKit) -> None:
    add_messages(ingest, 5)
    ingest.run(tables=["messages"])
    add_messages(ingest, 4)
    with ingest.sqlite() as conn:
        conn.execute("INSERT INTO users (id, name, updated_at) VALUES (1, 'ada', '2025-01-01 00:00:00')")

    crashed = ingest.run(faults=frozenset({FAULT_AFTER_MERGE}))
    assert crashed["messages"].status == "failed"
    assert "injected fault" in (crashed["messages"].error or "")
    assert len(ingest.rows("messages")) == 5  # the MERGE/INSERT was rolled back with the watermark
    state = SyncState(ingest.client, ingest.stack.project, ingest.dataset)
    assert state.get("messages").watermark == 5
    assert state.get("messages").lease_owner is None  # released in finally
    assert ingest.rows("users") == []  # created on the crashed run, empty

    rerun = ingest.run()
    assert rerun["messages"].rows_read == 4
    assert [m["id"] for m in ingest.rows("messages")] == list(range(1, 10))
    assert [u["id"] for u in ingest.rows("users")] == [1]
    assert not [t for t in ingest.tables() if t.startswith("_offsite_stage_")]


def test_applying_the_same_staged_rows_twice_adds_no_duplicate(ingest: IngestKit) -> None:
    """Idempotent even without the transaction: the keyed INSERT skips rows already there."""
    add_messages(ingest, 3)
    ingest.run(tables=["messages"])
    plan = plan_table(connect(str(ingest.db)), ingest.settings(), "messages")
    target = f"{ingest.stack.project}.{ingest.dataset}.messages"
    ingest.client.query(applying.write_rows(plan, target, target, full=False)).result()
    assert [m["id"] for m in ingest.rows("messages")] == [1, 2, 3]


def test_a_run_whose_state_changed_meanwhile_rolls_back(ingest: IngestKit) -> None:
    add_messages(ingest, 2)
    ingest.run(tables=["messages"])
    plan = plan_table(connect(str(ingest.db)), ingest.settings(), "messages")
    state = SyncState(ingest.client, ingest.stack.project, ingest.dataset)
    assert state.acquire("messages", "runA", 60)
    version = state.get("messages").version
    state.reset("messages")  # e.g. `offsite ingest reset` while runA was reading
    target = f"{ingest.stack.project}.{ingest.dataset}.messages"
    staged = f"SELECT id + 100 AS id, user_id, body, sent_at FROM `{target}`"
    write = applying.write_rows(plan, target, "STAGED", full=False).replace("`STAGED`", f"({staged})")
    change = applying.Apply("runA", version, "102", 2, 2, False)
    script = applying.script([write, *applying.advance(plan, f"{ingest.stack.project}.{ingest.dataset}", change)])
    with pytest.raises(Exception, match="took over the lease .* or the table was reset"):
        ingest.client.query(script).result()
    assert [m["id"] for m in ingest.rows("messages")] == [1, 2]


def test_overlapping_runs_of_one_table_do_not_both_apply_and_other_tables_go_on(ingest: IngestKit) -> None:
    add_messages(ingest, 3)
    with ingest.sqlite() as conn:
        conn.execute("INSERT INTO users (id, name, updated_at) VALUES (1, 'ada', '2025-01-01 00:00:00')")
    state = SyncState(ingest.client, ingest.stack.project, ingest.dataset)
    state.ensure()
    assert state.acquire("messages", "other-run", 600)  # a run still busy with messages
    assert not state.acquire("messages", "third-run", 600)

    second = ingest.run()
    assert second["messages"].status == "busy"
    assert second["users"].status == "synced"  # a different table is not blocked
    assert state.get("messages").lease_owner == "other-run"  # the busy run left the lease alone

    state.release("messages", "other-run")
    assert ingest.run()["messages"].rows_read == 3


WRITER = textwrap.dedent(
    """
    import os, sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 30000")
    i = 0
    while not os.path.exists(sys.argv[2]):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO messages (user_id, body) VALUES (?, ?)", (i, f"w{i}"))
        conn.execute(
            "INSERT INTO users (id, name, updated_at) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
            "name = excluded.name, updated_at = excluded.updated_at",
            (i % 7, f"v{i}", f"2025-01-01 {i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}"),
        )
        conn.execute("COMMIT")
        i += 1
    """
)


def test_rows_written_during_syncs_all_arrive(ingest: IngestKit) -> None:
    stop = ingest.db.with_name("stop-writer")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(ingest.db), str(stop)])
    try:
        with ingest.sqlite() as conn:
            while conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0:
                assert writer.poll() is None, "the writer died"
        for _ in range(3):  # the writer writes throughout these runs (it only stops when told)
            assert all(o.status in ("synced", "empty") for o in ingest.run().values())
    finally:
        stop.touch()
        assert writer.wait() == 0
    ingest.run()
    with ingest.sqlite() as conn:
        want_messages = [r[0] for r in conn.execute("SELECT id FROM messages ORDER BY id")]
        want_users = conn.execute("SELECT id, name, updated_at FROM users ORDER BY id").fetchall()
    assert [m["id"] for m in ingest.rows("messages")] == want_messages == list(range(1, len(want_messages) + 1))
    got = [(u["id"], u["name"], u["updated_at"].strftime("%Y-%m-%d %H:%M:%S")) for u in ingest.rows("users")]
    assert got == want_users


def test_hashed_values_are_not_in_logs_staging_or_bigquery(
    ingest: IngestKit, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "sk-live-NEVER-IN-CLEAR"
    with ingest.sqlite() as conn:
        conn.execute(
            "INSERT INTO users (id, name, api_key, score, updated_at) VALUES (1, 'ada', ?, 'not a number', '2025-01-01')",
            (secret,),
        )
    logged = io.StringIO()
    log.configure("json", stream=logged)
    try:
        failed = ingest.run(tables=["users"])  # a bad value elsewhere in the row: the row is reported
        assert failed["users"].status == "failed"
        assert "column 'score'" in (failed["users"].error or "")
        with ingest.sqlite() as conn:
            conn.execute("UPDATE users SET score = 2.5")
        assert ingest.run(tables=["users"])["users"].status == "synced"
    finally:
        log.configure(stream=sys.__stderr__)  # fd 2: still captured by pytest, never closed
    assert "ingest table done" in logged.getvalue()
    assert secret not in logged.getvalue()
    dump = "".join(str(r) for r in ingest.rows("users"))
    assert secret not in dump
    # the Parquet rows that reached staging are the ones BigQuery holds: read them from the source side
    from shared.ingest.source import TableReader

    conn = connect(str(ingest.db))
    reader = TableReader(
        conn, plan_table(conn, ingest.settings(), "users"), watermark=None, full=True, batch_rows=10, hash_key=b"k"
    )
    staged = [v for b in reader.batches() for col in b.columns.values() for v in col]
    assert secret not in [str(v) for v in staged]
