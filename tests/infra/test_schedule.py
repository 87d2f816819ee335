"""``offsite schedule`` lists what infra/ creates: every google_cloud_scheduler_job of the plan, with
its cron, time zone, topic and message, is one of shared.schedule.scheduled_jobs and the other
way round (for the example config, and one with a restore drill, an ingest time zone, a dotted
bucket name and another verify sweep)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from offsite.cli import app
from shared.config import from_dict
from shared.config.models import Config
from shared.schedule import scheduled_jobs
from tests.infra.conftest import EXAMPLE_CONFIG, scheduled_message
from tests.infra.hcl_eval import Module


def _variant() -> dict[str, Any]:
    raw = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    raw["datasets"][0]["restore_drill"] = {"schedule": "0 5 * * 1", "time_zone": "Europe/Paris", "to": "drills"}
    raw["ingest"] = {**raw["ingest"], "time_zone": "Asia/Kolkata", "full_schedule": "30 7 * * *"}
    raw["buckets"].append({"name": "bqx.ml.dotted", "schedule": "0 1 * * *", "destinations": ["box"]})
    raw["verify"] = {**raw.get("verify", {}), "sweep_schedule": "*/20 * * * *"}
    return raw


def _planned(module: Module) -> dict[str, tuple[str, str, str, Any]]:
    jobs = [*module.instances("google_cloud_scheduler_job", "job").values()]
    jobs += module.instances("google_cloud_scheduler_job", "mirror").values()
    out = {}
    for job in jobs:
        (target,) = job["pubsub_target"]
        topic = str(target["topic_name"]).split('"')[1]  # google_pubsub_topic.pipeline["TOPIC"].id
        out[str(job["name"])] = (job["schedule"], job["time_zone"], topic, scheduled_message(job))
    return out


@pytest.mark.parametrize("variant", [False, True], ids=["example", "drill-ingest-tz-dotted-bucket"])
def test_offsite_schedule_lists_exactly_the_jobs_terraform_plans(infra: Callable[..., Module], variant: bool) -> None:
    raw = _variant() if variant else yaml.safe_load(EXAMPLE_CONFIG.read_text())
    planned = _planned(infra(yaml.safe_dump(raw)))
    listed = {j.name: (j.schedule, j.time_zone, j.topic, j.message) for j in scheduled_jobs(from_dict(Config, raw))}
    assert listed == planned
    if variant:
        assert planned["offsite-restore-drill-bqx_ml_v3_models"][1] == "Europe/Paris"
        assert planned["offsite-mirror-bqx-ml-dotted"][3] == {"bucket": "bqx.ml.dotted"}


def test_the_schedule_command_shows_each_jobs_next_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "offsite.yaml"
    config.write_text(yaml.safe_dump(_variant()))
    result = CliRunner().invoke(app, ["schedule", "--json", "--config", str(config)])
    assert result.exit_code == 0, result.output
    rows = {r["job"]: r for r in yaml.safe_load(result.stdout)}
    full = rows["offsite-ingest-full"]
    when = dt.datetime.fromisoformat(full["next_run"])
    assert (when.hour, when.minute, when.utcoffset()) == (7, 30, dt.timedelta(hours=5, minutes=30))
    assert dt.timedelta(0) < when - dt.datetime.now(dt.UTC) <= dt.timedelta(days=1)
    collect = dt.datetime.fromisoformat(rows["offsite-collect-toast"]["next_run"])
    assert collect.weekday() < 5  # the example's calendar: weekdays only
    text = CliRunner().invoke(app, ["schedule", "--config", str(config)])
    assert text.exit_code == 0 and "offsite-verify-sweep" in text.stdout and "*/20 * * * *" in text.stdout


def test_offsite_logs_filters_on_the_deployed_service_names(example: Module) -> None:
    """``offsite logs`` names each function's Cloud Run service as infra/ deploys it."""
    from shared.topology import FUNCTIONS

    deployed = {key: str(fn["name"]) for key, fn in example.instances("google_cloudfunctions2_function", "fn").items()}
    assert deployed == {f.name: f.deployed_name for f in FUNCTIONS}
