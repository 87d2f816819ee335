"""GET /ingest through the running http_trigger: the SQLite → BigQuery ingest's sync state per
table (what `offsite ingest status` shows), the config's selection and the ingest's schedule,
after a real ingest run (POST /ingest → the ingest_sqlite process → BigQuery); 404 without an
``ingest:`` section, as POST /ingest answers."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from devstack import sample_app
from devstack.state import StackInfo
from offsite.cli import app
from shared.config_load import load_config
from tests.http.conftest import Trigger

TABLES = {"chat_history", "user_cohorts", "users"}  # the sample app's tables (devstack/sample_app.py)


def _cli(config: Path, *args: str) -> Any:
    from shared import runtime

    runtime.reset()
    return CliRunner().invoke(app, [*args, "--config", str(config)])


def _ingested(trigger: Trigger, run_id: str, timeout_s: float = 300) -> dict[str, Any]:
    """GET /runs/<run_id> once the ingest function has reported every table of the sample app."""
    deadline = time.monotonic() + timeout_s
    while True:
        reply = trigger.call("GET", f"/runs/{run_id}")
        if reply.status == 200 and {t.get("table") for t in reply.body["tables"]} >= TABLES:
            return reply.body
        assert time.monotonic() < deadline, f"ingest run {run_id} never reported: {reply.status} {reply.body}"
        time.sleep(1.0)


def test_get_ingest_shows_each_tables_sync_state_selection_and_schedule(trigger: Trigger) -> None:
    settings = trigger.config.ingest
    assert settings is not None and settings.snapshot_uri  # the stack's config syncs the sample SQLite app
    counts = sample_app.create(Path(settings.sqlite_path))  # as `offsite dev seed` does (idempotent)
    pushed = _cli(trigger.stack.config_path, "ingest", "push", "--json")  # the snapshot the function syncs
    assert pushed.exit_code == 0, pushed.output
    started_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)

    started = trigger.call("POST", "/ingest", {"full": True})
    assert started.status == 202, started.body
    run = _ingested(trigger, started.body["run_id"])
    assert all(t["status"] == "in_sync" for t in run["tables"] if t.get("table") in TABLES), run

    reply = trigger.call("GET", "/ingest")
    assert reply.status == 200, reply.body
    body = reply.body
    assert set(body) == {"project", "dataset", "tables", "syncing", "selection", "schedule", "checked_at"}
    assert (body["project"], body["dataset"]) == (trigger.stack.project, settings.dataset)
    tables = {t["table"]: t for t in body["tables"]}
    assert set(tables) >= TABLES
    for name in TABLES:
        state = tables[name]
        assert set(state) == {
            "table",
            "last_sync_at",
            "last_full_sync_at",
            "watermark",
            "rows_total",
            "last_rows_read",
            "lag_s",
            "last_error",
            "lease_owner",
            "selected",
        }
        assert dt.datetime.fromisoformat(state["last_sync_at"]) >= started_at, state
        assert dt.datetime.fromisoformat(state["last_full_sync_at"]) >= started_at, state  # full: every row read
        assert state["last_rows_read"] == counts[name] and state["rows_total"] >= counts[name], state
        assert state["last_error"] is None and state["lease_owner"] is None
        assert 0 <= state["lag_s"] < 3600 and state["selected"] is True
    # chat_history's cursor is its autoincrement id, users' its updated_at (user_cohorts has none: read whole)
    assert tables["chat_history"]["watermark"] == counts["chat_history"] and tables["users"]["watermark"]
    assert body["syncing"] == []
    assert body["selection"]["include"] == list(settings.include)
    assert body["selection"]["exclude"] == list(settings.exclude)
    assert set(body["selection"]["tables"]) >= TABLES

    # the schedule: the ingest's two Cloud Scheduler jobs (shared/schedule.py), with their next run
    jobs = {j["job"]: j for j in body["schedule"]}
    assert {name: (j["schedule"], j["time_zone"], j["topic"]) for name, j in jobs.items()} == {
        "offsite-ingest-incremental": (settings.schedule, settings.time_zone, "ingest-requests"),
        "offsite-ingest-full": (settings.full_schedule, settings.time_zone, "ingest-requests"),
    }
    assert json.loads(jobs["offsite-ingest-full"]["message"]) == {"full": True}
    for job in jobs.values():
        assert dt.datetime.fromisoformat(job["next_run"]) > dt.datetime.now(dt.UTC)

    # the same state `offsite ingest status --json` prints (lag_s moves with the clock)
    cli = _cli(trigger.stack.config_path, "ingest", "status", "--json")
    assert cli.exit_code == 0, cli.output
    printed = {r["table"]: {k: v for k, v in r.items() if k != "lag_s"} for r in json.loads(cli.output)}
    answered = {t: {k: v for k, v in s.items() if k not in ("lag_s", "selected")} for t, s in tables.items()}
    assert answered == printed


def test_get_ingest_without_an_ingest_section_is_404(stack_factory: Callable[..., StackInfo], tmp_path: Path) -> None:
    """A stack whose config has no ``ingest:``: GET /ingest is a 404, as POST /ingest is."""
    overlay = tmp_path / "no-ingest.yaml"
    overlay.write_text(yaml.safe_dump({"ingest": None}))
    info = stack_factory(
        functions=["http_trigger"], without=["bigquery", "sftp", "box", "drive", "webhook"], config_overlay=overlay
    )
    trigger = Trigger(info, load_config(info.config_path, environ={}))
    assert trigger.config.ingest is None
    for method in ("GET", "POST"):
        reply = trigger.call(method, "/ingest")
        assert reply.status == 404, (method, reply.body)
        assert reply.body["error"].startswith("ingest: not configured"), reply.body


def test_get_ingest_when_bigquery_cannot_be_reached_is_503(trigger: Trigger, monkeypatch: Any) -> None:
    """BigQuery down, at the Google client (the local BigQuery cannot answer 503): a 503 with
    Retry-After, through the trigger's TransientError mapping."""
    from google.api_core import exceptions as gexc

    from shared.gcp import clients
    from shared.http_trigger import api

    client = clients.bigquery_client()
    refused: list[str] = []

    def list_rows(table: Any, *args: Any, **kwargs: Any) -> Any:
        refused.append(str(table))
        raise gexc.ServiceUnavailable("BigQuery is currently unavailable")

    monkeypatch.setattr(client, "list_rows", list_rows)
    request = api.HttpRequest("GET", "/ingest", authorization=f"Bearer {trigger.token()}")
    reply = api.handle(request, trigger.config)
    assert refused and refused[0].endswith("._offsite_sync_state"), refused
    assert reply.status == 503 and reply.headers["Retry-After"], reply
    assert "_offsite_sync_state" in reply.body["error"] and "ServiceUnavailable" in reply.body["error"], reply.body
