"""`offsite collect run JOB --dry-run` follows the job's calendar as the run does: on a day it
skips, a run (without --any-day) copies nothing, and the dry run says so and why."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from zoneinfo import ZoneInfo

import pytest
import yaml
from typer.testing import CliRunner

from offsite.cli import app
from shared import runtime
from tests.collect.conftest import Collect

pytestmark = pytest.mark.stack
TZ = "America/New_York"


def test_dry_run_on_a_holiday_copies_what_the_run_copies(
    collect: Collect, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from shared.collect.listing import list_and_fan_out
    from shared.collect.messages import CollectRequest

    today = dt.datetime.now(ZoneInfo(TZ)).date()
    path = tmp_path / "offsite.yaml"
    job = {"schedule": "0 6 * * *", "time_zone": TZ, "calendar": {"holidays": [today.isoformat()]}}
    path.write_text(yaml.safe_dump(collect.raw(job)))
    monkeypatch.setenv("OFFSITE_CONFIG", str(path))
    runtime.reset()
    collect.write("a.csv", b"alpha")
    runner = CliRunner()
    dry = runner.invoke(app, ["collect", "run", collect.name, "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    request = CollectRequest(collect=collect.name)
    done = list_and_fan_out(runtime.config(), request, run_id="r" + uuid.uuid4().hex[:12], day=today)
    assert json.loads(dry.stdout) == [f.name for f in done] == []  # before: the dry run listed a.csv
    text = runner.invoke(app, ["collect", "run", collect.name, "--dry-run"])
    assert f"collect {collect.name}: a run today copies nothing: {today.isoformat()} is a holiday" in text.stdout
    anyway = runner.invoke(app, ["collect", "run", collect.name, "--dry-run", "--any-day", "--json"])
    assert [r["name"] for r in json.loads(anyway.stdout)] == ["a.csv"]
