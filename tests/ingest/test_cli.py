"""`offsite ingest run|status|tables|reset|push` against the local stack and a real SQLite file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from offsite.cli import app
from tests.ingest.conftest import IngestKit


def config_file(kit: IngestKit, tmp_path: Path, **ingest: Any) -> Path:
    cfg = yaml.safe_load(kit.stack.config_path.read_text())
    cfg["ingest"] = {
        "sqlite_path": str(kit.db),
        "dataset": kit.dataset,
        "hash_key": "k",
        "tables": {"users": {"hashed_columns": ["api_key"]}, "messages": {"mode": "append"}},
        **ingest,
    }
    path = tmp_path / "offsite.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def invoke(path: Path, *args: str) -> Any:
    from shared import runtime

    runtime.reset()
    return CliRunner().invoke(app, ["ingest", *args, "--config", str(path)])


def test_tables_run_status_reset(ingest: IngestKit, tmp_path: Path) -> None:
    cfg = config_file(ingest, tmp_path)
    with ingest.sqlite() as conn:
        conn.execute("INSERT INTO users (id, name, updated_at) VALUES (1, 'ada', '2025-01-01 00:00:00')")
        conn.execute("INSERT INTO messages (user_id, body) VALUES (1, 'a'), (1, 'b')")

    before = invoke(cfg, "status", "--json")
    assert (before.exit_code, json.loads(before.output)) == (0, [])  # nothing synced yet, no state table

    listed = invoke(cfg, "tables", "--json")
    assert listed.exit_code == 0, listed.output
    by_name = {t["table"]: t for t in json.loads(listed.output)}
    assert (by_name["users"]["mode"], by_name["users"]["key"], by_name["users"]["cursor"]) == (
        "merge",
        ["id"],
        "updated_at",
    )
    assert by_name["users"]["hashed"] == ["api_key"]
    assert (by_name["users"]["cursor_indexed"], by_name["messages"]["cursor_indexed"]) == (False, True)
    with ingest.sqlite() as conn:
        conn.execute("CREATE INDEX users_updated_at ON users (updated_at)")
    assert json.loads(invoke(cfg, "tables", "--json").output)[1]["cursor_indexed"] is True
    assert (by_name["messages"]["mode"], by_name["messages"]["cursor"]) == ("append", "id")

    dry = invoke(cfg, "run", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert {o["table"]: (o["status"], o["rows_read"]) for o in json.loads(dry.output)} == {
        "messages": ("planned", 2),
        "users": ("planned", 1),
    }
    assert "messages" not in ingest.tables()  # a dry run writes nothing

    only = invoke(cfg, "run", "--tables", "messages")
    assert only.exit_code == 0, only.output
    assert "messages" in only.output and "users" not in only.output
    assert invoke(cfg, "run").exit_code == 0

    status = invoke(cfg, "status", "--json")
    assert status.exit_code == 0, status.output
    rows = {r["table"]: r for r in json.loads(status.output)}
    assert (rows["messages"]["watermark"], rows["messages"]["rows_total"]) == (2, 2)
    assert rows["users"]["watermark"] == "2025-01-01 00:00:00"
    assert rows["users"]["last_error"] is None

    reset = invoke(cfg, "reset", "messages", "--json")
    assert reset.exit_code == 0 and json.loads(reset.output) == {"table": "messages", "watermark_cleared": True}
    full = invoke(cfg, "run", "--tables", "messages", "--json")
    assert json.loads(full.output)[0]["rows_read"] == 2
    assert [m["id"] for m in ingest.rows("messages")] == [1, 2]  # re-synced by key: no duplicate

    unknown = invoke(cfg, "run", "--tables", "nope")
    assert unknown.exit_code == 2
    assert "'nope' not synced (discovered: messages, users)" in unknown.output


def test_run_exits_1_when_a_table_fails(ingest: IngestKit, tmp_path: Path) -> None:
    cfg = config_file(ingest, tmp_path)
    with ingest.sqlite() as conn:
        conn.execute("INSERT INTO messages (user_id, body) VALUES ('x', 'bad')")
    result = invoke(cfg, "run")
    assert result.exit_code == 1
    assert "column 'user_id'" in result.output


def test_push_uploads_a_consistent_snapshot(ingest: IngestKit, tmp_path: Path) -> None:
    from shared.gcp import clients

    uri = f"gs://{ingest.stack.bucket}/snapshots/{ingest.dataset}/app.sqlite"
    cfg = config_file(ingest, tmp_path, snapshot_uri=uri)
    with ingest.sqlite() as conn:
        conn.execute("INSERT INTO messages (user_id, body) VALUES (1, 'in the snapshot')")
    result = invoke(cfg, "push", "--json")
    assert result.exit_code == 0, result.output
    out = tmp_path / "copy.sqlite"
    clients.storage_client().bucket(ingest.stack.bucket).blob(
        f"snapshots/{ingest.dataset}/app.sqlite"
    ).download_to_filename(str(out))
    copy = sqlite3.connect(out)
    assert copy.execute("SELECT body FROM messages").fetchall() == [("in the snapshot",)]
    assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_run_report_publishes_each_tables_result_as_the_function_does(ingest: IngestKit, tmp_path: Path) -> None:
    """On the app host, ``run --report`` puts each table's outcome on verify-results (history,
    `offsite status`, alerts) as the ingest function does; without it nothing is published."""
    from shared.topology import VERIFY_RESULTS
    from tests.exports.conftest import ExportsKit

    cfg = config_file(ingest, tmp_path)
    puller = ExportsKit(ingest.stack, None).subscribe(VERIFY_RESULTS)
    with ingest.sqlite() as conn:
        conn.execute("INSERT INTO messages (user_id, body) VALUES (1, 'a'), (1, 'b')")

    refused = invoke(cfg, "run", "--report", "--dry-run")
    assert refused.exit_code == 2 and "nothing to report" in refused.output
    quiet = invoke(cfg, "run", "--tables", "users")
    assert quiet.exit_code == 0, quiet.output

    reported = invoke(cfg, "run", "--report")
    assert reported.exit_code == 0, reported.output
    got = puller.pull(lambda m: (m.get("source") or {}).get("dataset") == ingest.dataset, count=2)
    by_table = {m["source"]["table"]: m for m in got}
    assert {t: (m["status"], m["stage"], m["rows_read"]) for t, m in by_table.items()} == {
        "messages": ("in_sync", "ingest_sqlite", 2),
        "users": ("in_sync", "ingest_sqlite", 0),
    }
    assert len({m["run_id"] for m in got}) == 1
