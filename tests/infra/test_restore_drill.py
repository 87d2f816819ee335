"""What infra/ derives from a dataset's ``restore_drill``: its scheduler job on restore-drills and
the drill function's write access to the scratch dataset (and only there)."""

from __future__ import annotations

import base64
import json

import yaml

from shared.config_load import load_config


def _config() -> dict:
    return {
        "project": "p",
        "bucket": "drill-exports",
        "destinations": {"box": {"auth": {"method": "developer_token", "developer_token": "env:T"}}},
        "datasets": [
            {
                "name": "sales",
                "schedule": "15 1 * * *",
                "restore_drill": {"schedule": "0 5 * * 1", "time_zone": "Europe/Paris", "sample": 3, "to": "scratch"},
            },
            {"name": "crm", "restore_drill": {"schedule": "0 6 * * *", "to": "other-proj.drills", "from": "box"}},
            {"name": "adhoc"},  # no drill: no job, no grant
        ],
    }


def test_each_drilled_dataset_gets_a_scheduler_job_on_restore_drills(infra, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "offsite.yaml"
    path.write_text(yaml.safe_dump(_config()))
    load_config(path, environ={"T": "x"})  # the same YAML is a valid offsite config
    module = infra(yaml.safe_dump(_config()))
    jobs = module.instances("google_cloud_scheduler_job", "job")
    drills = {k: v for k, v in jobs.items() if k.startswith("offsite-restore-drill-")}
    assert set(drills) == {"offsite-restore-drill-sales", "offsite-restore-drill-crm"}
    sales = drills["offsite-restore-drill-sales"]
    assert (sales["schedule"], sales["time_zone"]) == ("0 5 * * 1", "Europe/Paris")
    assert drills["offsite-restore-drill-crm"]["time_zone"] == "UTC"
    (target,) = sales["pubsub_target"]
    assert json.loads(base64.b64decode(target["data"])) == {"dataset": "sales"}
    assert str(target["topic_name"]) == 'google_pubsub_topic.pipeline["restore-drills"].id'
    assert "offsite-dataset-sales" in jobs  # the export's own schedule is untouched


def test_the_drill_may_write_only_its_scratch_datasets(infra) -> None:  # type: ignore[no-untyped-def]
    module = infra(yaml.safe_dump(_config()))
    grants = {
        k: (v["role"], v["project"], v["dataset_id"])
        for k, v in module.instances("google_bigquery_dataset_iam_member", "reader").items()
        if k.startswith("restore_drill/")
    }
    assert grants == {
        "restore_drill/p.scratch": ("roles/bigquery.dataEditor", "p", "scratch"),
        "restore_drill/other-proj.drills": ("roles/bigquery.dataEditor", "other-proj", "drills"),
    }
