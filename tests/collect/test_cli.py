"""``offsite collect status|ls|run`` and the freshness line of ``offsite status``, on the local stack."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from offsite.cli import app
from shared import runtime
from shared.topology import COLLECT_REQUESTS
from tests.collect.conftest import Collect

runner = CliRunner()


@pytest.fixture
def cli_config(collect: Collect, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "offsite.yaml"
    # every day a business day: the dry runs below list what a run copies today, whatever day that is
    calendar = {"weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "holidays": ["2025-12-25"]}
    job = {"schedule": "0 6 * * *", "time_zone": "America/New_York", "calendar": calendar}
    path.write_text(yaml.safe_dump(collect.raw(job)))
    monkeypatch.setenv("OFFSITE_CONFIG", str(path))
    runtime.reset()
    return path


def test_ls_dry_run_and_status_follow_a_run(collect: Collect, cli_config: Path) -> None:
    collect.write("a.csv", b"alpha")
    listed = json.loads(runner.invoke(app, ["collect", "ls", collect.name, "--json"]).stdout)
    assert [(r["name"], r["size"], r["state"]) for r in listed] == [("a.csv", 5, "settling")]
    dry = runner.invoke(app, ["collect", "run", collect.name, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"would copy to memory under collect/{collect.name}/ (then keep)" in dry.stdout
    assert "a.csv" in dry.stdout
    never = json.loads(runner.invoke(app, ["collect", "status", collect.name, "--json"]).stdout)
    assert never[0]["last_run_at"] is None and never[0]["next_run"].endswith(("-05:00", "-04:00"))

    assert collect.run(runtime.config()) == ["collected"]
    listed = json.loads(runner.invoke(app, ["collect", "ls", collect.name, "--json"]).stdout)
    assert [r["state"] for r in listed] == ["collected"]
    assert "nothing new to copy" in runner.invoke(app, ["collect", "run", collect.name, "--dry-run"]).stdout
    [row] = json.loads(runner.invoke(app, ["collect", "status", collect.name, "--json"]).stdout)
    assert (row["last_status"], row["last_files"], row["last_bytes"]) == ("in_sync", 1, 5)
    assert row["last_collected_at"] is not None
    table = runner.invoke(app, ["collect", "status"])
    assert table.stdout.splitlines()[0].split()[:4] == ["JOB", "PARTNER", "LAST", "RUN"]
    overall = runner.invoke(app, ["status", "--since", "1d"])
    assert f"collect {collect.name}: last collected at {row['last_collected_at']}" in overall.stdout


def test_run_publishes_the_request_and_unknown_jobs_are_named(collect: Collect, cli_config: Path) -> None:
    admin = collect.stack.pubsub_admin()
    sub = f"collect-req-{uuid.uuid4().hex[:8]}"
    admin.create_subscription(sub, COLLECT_REQUESTS)
    out = runner.invoke(app, ["collect", "run", collect.name, "--any-day", "--json"])
    assert out.exit_code == 0, out.output
    printed = json.loads(out.stdout)
    [message] = admin.pull(sub, 10)
    body = json.loads(message["data_bytes"])
    assert body == printed["request"] and body["collect"] == collect.name and body["ignore_calendar"] is True
    bad = runner.invoke(app, ["collect", "ls", "nope"])
    assert bad.exit_code == 2 and f"'nope' is not a configured collect job (configured: {collect.name})" in bad.output


def test_ls_and_dry_run_show_a_name_collect_cannot_copy_and_why(collect: Collect, cli_config: Path) -> None:
    collect.write("good.csv", b"alpha")
    collect.write("Report.csv", b"upper")  # differs from report.csv only in case: fine for memory
    collect.write("report.csv", b"lower")
    collect.write_bytes_named(b"caf\xe9.csv", b"latin-1 name")
    out = runner.invoke(app, ["collect", "ls", collect.name, "--json"])
    assert out.exit_code == 0, out.output
    listed = json.loads(out.stdout)
    assert [(r["name"], r["state"]) for r in listed] == [
        ("Report.csv", "settling"),
        ("caf\\xe9.csv", "unsupported"),
        ("good.csv", "settling"),
        ("report.csv", "settling"),
    ]
    assert "not UTF-8" in listed[1]["why"] and "renamed at the partner" in listed[1]["why"]
    table = runner.invoke(app, ["collect", "ls", collect.name])
    assert table.exit_code == 0 and "caf\\xe9.csv" in table.stdout and "unsupported" in table.stdout
    dry = runner.invoke(app, ["collect", "run", collect.name, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert (
        f"collect {collect.name}: not collected (`offsite collect ls {collect.name}` says why): caf\\xe9.csv"
        in dry.stdout
    )


def test_run_wait_ends_with_the_runs_result(collect: Collect, cli_config: Path) -> None:
    """--wait reads the run's result.json: a run already complete under that run id (a request
    sent again is the same run) answers at once, exit 0 for in_sync."""
    collect.write("a.csv", b"alpha")
    run_id = "rcliwait" + uuid.uuid4().hex[:6]
    assert collect.run(runtime.config(), run_id=run_id) == ["collected"]
    out = runner.invoke(app, ["collect", "run", collect.name, "--any-day", "--run-id", run_id, "--wait"])
    assert out.exit_code == 0, out.output
    assert f"collect {collect.name} {run_id}: in_sync (collect_copy): 1/1 files, 5 bytes" in out.stdout
    doc = json.loads(
        runner.invoke(app, ["collect", "run", collect.name, "--run-id", run_id, "--wait", "--json"]).stdout
    )
    assert doc["complete"] is True and doc["result"]["status"] == "in_sync" and doc["request"]["run_id"] == run_id


def test_run_wait_ends_at_a_failed_listing_and_gives_up_after_the_timeout(collect: Collect, cli_config: Path) -> None:
    """A listing that failed writes no result.json, only its failure in the run history: the wait
    ends there (exit 1, the reason on stderr). With neither, it gives up after --timeout."""
    from shared.collect.runs import source
    from shared.ids import Stage
    from shared.messages import VerifyResult
    from shared.reporting.results import report

    run_id = "rcliwait" + uuid.uuid4().hex[:6]
    failure = VerifyResult(
        status="failed", stage=Stage.COLLECT_LIST, run_id=run_id, source=source(collect.name), reason="auth failed"
    )
    report(failure, config=runtime.config())
    out = runner.invoke(app, ["collect", "run", collect.name, "--run-id", run_id, "--wait", "--timeout", "30"])
    assert out.exit_code == 1, out.output
    assert f"error: collect {collect.name} {run_id}: failed (collect_list)\n  auth failed" in out.stderr
    nothing = runner.invoke(app, ["collect", "run", collect.name, "--any-day", "--wait", "--timeout", "1"])
    assert nothing.exit_code == 1  # the bare stack runs no collect_list
    assert "no result after 1s" in nothing.stderr
    bad = runner.invoke(app, ["collect", "run", collect.name, "--run-id", "no/slash"])
    assert bad.exit_code == 2 and "run_id: 'no/slash' does not match" in bad.stderr
    assert "nothing was published" in bad.stderr
