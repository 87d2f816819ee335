"""``offsite prune``, ``offsite status`` after a prune, and the daily pass after the verify
sweep, on the local stack (Box API server, sshd, fake-gcs-server, Pub/Sub emulator)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

import pytest
from typer.testing import CliRunner

from offsite.cli import app
from shared.gcp import gcs
from shared.retention.scheduled import claim_name, daily_pass
from shared.runtime import config
from tests.retention.conftest import RetentionStack, key

pytestmark = pytest.mark.stack

runner = CliRunner()
D1, D2 = dt.date(2025, 4, 1), dt.date(2025, 4, 2)


def test_prune_command_dry_run_then_for_real_and_status_shows_pruned(
    rstack_factory: Callable[..., RetentionStack],
) -> None:
    rs = rstack_factory(daily=1)
    old, new = rs.run_of(D1, "box"), rs.run_of(D2, "box")
    sftp_old = rs.run_of(D1, "sftp:local")
    rs.run_of(D2, "sftp:local")

    dry = runner.invoke(app, ["prune", "--dry-run", "--destination", "box"])
    assert dry.exit_code == 0, dry.output
    assert "would prune 1 run folder(s); kept 1, protected 0" in dry.output
    assert f"{rs.dataset}/orders/20250401/{old.run_id}" in dry.output
    assert key(old) in rs.remote_runs("box")

    done = runner.invoke(app, ["prune", "--dataset", rs.dataset, "--destination", "box", "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    assert report["dry_run"] is False
    assert {(o["date"], o["action"]) for o in report["outcomes"]} == {("2025-04-01", "pruned"), ("2025-04-02", "keep")}
    assert rs.remote_runs("box") == {key(new)}
    assert key(sftp_old) in rs.remote_runs("sftp:local")  # --destination box only

    status = runner.invoke(app, ["status", "--json"])
    assert status.exit_code == 0, status.output
    row = next(r for r in json.loads(status.output) if r["run_id"] == old.run_id)
    assert row["destinations"] == {"box": "pruned"} and row["last_failure"] is None
    table = runner.invoke(app, ["status"])
    assert "box=pruned" in table.output


def test_prune_command_names_an_unknown_filter(rstack_factory: Callable[..., RetentionStack]) -> None:
    rs = rstack_factory(daily=1)
    bad = runner.invoke(app, ["prune", "--dataset", "nope"])
    assert bad.exit_code == 2
    assert f"--dataset: 'nope' is not a configured dataset (configured: {rs.dataset})" in bad.output
    wrong = runner.invoke(app, ["prune", "--destination", "sftp:elsewhere"])
    assert wrong.exit_code == 2 and "--destination: 'sftp:elsewhere' is not a configured destination" in wrong.output


def test_the_sweep_prunes_once_a_day_per_destination(rstack_factory: Callable[..., RetentionStack]) -> None:
    rs = rstack_factory(daily=1)
    old = rs.run_of(D1, "box")
    rs.run_of(D2, "box")
    rs.request({"sweep": True})  # what Cloud Scheduler sends every 30 minutes
    assert [r.status for r in rs.results_for(old)] == ["in_sync", "pruned"]
    today = dt.datetime.now(dt.UTC)
    entry = config().dataset(rs.dataset)
    assert gcs.read_json(rs.state_bucket, claim_name((entry, "box"), today))["status"] == "done"

    older = rs.run_of(dt.date(2025, 3, 1), "box")  # arrives after today's pass
    rs.request({"sweep": True})
    assert key(older) in rs.remote_runs("box")  # pruned once a day: not again today
    tomorrow = daily_pass(config(), now=today + dt.timedelta(days=1))
    assert tomorrow.pruned == 1 and key(older) not in rs.remote_runs("box")


def test_out_of_budget_leaves_the_work_to_the_next_sweep(rstack_factory: Callable[..., RetentionStack]) -> None:
    rs = rstack_factory(daily=1)
    old = rs.run_of(D1, "box")
    rs.run_of(D2, "box")
    now = dt.datetime.now(dt.UTC)
    late = daily_pass(config(), now=now, budget_s=-1)
    assert (late.deferred, late.pruned) == (4, 0)  # the dataset and the export, at box and sftp:local: none started
    entry = config().dataset(rs.dataset)
    assert gcs.stat(rs.state_bucket, claim_name((entry, "box"), now)) is None
    assert key(old) in rs.remote_runs("box")
    assert daily_pass(config(), now=now).pruned == 1
    assert key(old) not in rs.remote_runs("box")
