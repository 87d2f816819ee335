"""What infra/ derives from the offsite YAML: scheduler jobs, secrets, SFTP concurrency, names."""

from __future__ import annotations

import yaml

from shared import topology
from shared.config_load import load_config
from tests.infra.conftest import EXAMPLE_CONFIG, scheduled_message
from tests.infra.hcl_eval import Module

SEED_000 = {  # seed 000's Cloud Scheduler table: dataset -> cron (UTC)
    "bqx_ml_v3_models": "0 2 * * *",
    "bqx_ml_v3_features": "0 3 * * 0",
    "bqx_ml_v3_predictions": "0 4 * * 1",
    "bqx_ml_v3_analytics_v2": "0 5 1 * *",
}


def _jobs(module: Module) -> dict[str, dict]:
    return module.instances("google_cloud_scheduler_job", "job")


def test_example_config_schedules_seed_000s_four_datasets(example: Module) -> None:
    config = load_config(EXAMPLE_CONFIG)  # the YAML is also a valid offsite config
    jobs = _jobs(example)
    datasets = {scheduled_message(j)["dataset"]: j for j in jobs.values() if "dataset" in scheduled_message(j)}
    assert {name: job["schedule"] for name, job in datasets.items()} == SEED_000
    assert {d.name for d in config.datasets} == set(SEED_000)
    for name, job in datasets.items():
        assert job["time_zone"] == "UTC"
        assert job["name"] == f"offsite-dataset-{name}"
        assert job["region"] == "us-central1"
        (target,) = job["pubsub_target"]
        assert str(target["topic_name"]) == 'google_pubsub_topic.pipeline["export-requests"].id'
        assert target["attributes"]["origin"] == "cloud-scheduler"


def test_query_exports_and_the_verify_sweep_are_scheduled(example: Module) -> None:
    jobs = _jobs(example)
    export = jobs["offsite-export-product_data"]
    assert scheduled_message(export) == {"export": "product_data"}
    assert export["schedule"] == "0 6 * * *"
    sweep = jobs["offsite-verify-sweep"]
    assert scheduled_message(sweep) == {"sweep": True}
    assert sweep["schedule"] == "*/30 * * * *"
    assert str(sweep["pubsub_target"][0]["topic_name"]) == 'google_pubsub_topic.pipeline["verify-requests"].id'
    finalize = jobs["offsite-export-finalize-sweep"]
    assert scheduled_message(finalize) == {"sweep": True}
    assert finalize["schedule"] == "*/15 * * * *" and finalize["time_zone"] == "UTC"
    assert str(finalize["pubsub_target"][0]["topic_name"]) == (
        f'google_pubsub_topic.pipeline["{topology.EXPORT_SWEEPS}"].id'
    )
    collect = jobs["offsite-collect-toast"]
    assert scheduled_message(collect) == {"collect": "toast"}
    assert (collect["schedule"], collect["time_zone"]) == ("0 6 * * *", "America/New_York")
    assert str(collect["pubsub_target"][0]["topic_name"]) == (
        f'google_pubsub_topic.pipeline["{topology.COLLECT_REQUESTS}"].id'
    )
    assert len(jobs) == len(SEED_000) + 4 + 2  # + the ingest's incremental and full (test_ingest)


def test_schedules_follow_the_config(infra) -> None:  # type: ignore[no-untyped-def]
    config = {
        "project": "p",
        "bucket": "b",
        "datasets": [
            {"name": "sales", "schedule": "15 1 * * *", "time_zone": "Europe/Paris"},
            {"name": "adhoc"},  # no schedule: exported on request only
        ],
        "exports": [
            {"name": "orders_daily", "sql": "SELECT {date}", "schedule": "0 7 * * 1-5", "time_zone": "America/New_York"}
        ],
        "verify": {"sweep_schedule": "0 * * * *"},
    }
    jobs = _jobs(infra(yaml.safe_dump(config)))
    assert set(jobs) == {
        "offsite-dataset-sales",
        "offsite-export-orders_daily",
        "offsite-verify-sweep",
        "offsite-export-finalize-sweep",
    }
    assert (jobs["offsite-dataset-sales"]["schedule"], jobs["offsite-dataset-sales"]["time_zone"]) == (
        "15 1 * * *",
        "Europe/Paris",
    )
    assert jobs["offsite-export-orders_daily"]["time_zone"] == "America/New_York"
    assert jobs["offsite-verify-sweep"]["schedule"] == "0 * * * *"


def test_secrets_are_created_empty_from_the_configs_references(example: Module) -> None:
    secrets = example.instances("google_secret_manager_secret", "credential")
    assert set(secrets) == {
        "offsite-box-jwt-config",
        "sftp-acme-key",
        "sftp-acme-known-hosts",
        "slack-webhook",
        "ingest-hash-key",
        "sftp-toast-key",
        "sftp-toast-known-hosts",
    }
    for secret in secrets.values():
        assert secret["replication"] == [{"auto": [{}]}]
    # No credential value passes through Terraform: the only secret version is the config's.
    versions = [key for key in example.resources if key[0] == "google_secret_manager_secret_version"]
    assert versions == [("google_secret_manager_secret_version", "config")]
    assert all(check for check, _ in example.check_assertions()["secrets_live_in_this_project"])


def test_secrets_in_another_project_are_reported_not_created(infra) -> None:  # type: ignore[no-untyped-def]
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    config["destinations"]["box"]["auth"]["jwt_config"] = "sm://projects/elsewhere/secrets/box/versions/1"
    module = infra(yaml.safe_dump(config))
    assert "box" not in module.instances("google_secret_manager_secret", "credential")
    ((ok, message),) = module.check_assertions()["secrets_live_in_this_project"]
    assert ok is False and "sm://projects/elsewhere/secrets/box/versions/1" in message


def test_alert_webhook_secret_variable(infra) -> None:  # type: ignore[no-untyped-def]
    module = infra(alert_webhook_secret="ops-slack")
    assert "ops-slack" in module.instances("google_secret_manager_secret", "credential")
    assert "verify/ops-slack" in module.instances("google_secret_manager_secret_iam_member", "credential_reader")
    for fn in module.instances("google_cloudfunctions2_function", "fn").values():
        env = fn["service_config"][0]["environment_variables"]
        assert env["OFFSITE__ALERTS__SLACK_WEBHOOK_URL"] == "sm://projects/bqx-ml/secrets/ops-slack/versions/latest"


def test_sftp_instances_are_capped_by_partner_concurrency(infra, example: Module) -> None:  # type: ignore[no-untyped-def]
    """instances x min(concurrency x connections_per_file, max_sessions) <= max_sessions, for every partner."""
    from shared import topology

    concurrency = topology.function("transfer_sftp").concurrency
    functions = example.instances("google_cloudfunctions2_function", "fn")
    # acme: max_sessions 4 (default), one connection per file; one instance holds up to 4 sessions.
    assert functions["transfer_sftp"]["service_config"][0]["max_instance_count"] == 1
    assert functions["transfer_sftp"]["service_config"][0]["max_instance_request_concurrency"] == concurrency
    assert functions["upload_box"]["service_config"][0]["max_instance_count"] == 10

    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    config["destinations"]["sftp"]["acme"]["max_sessions"] = 64
    # 64 sessions, an instance holds at most concurrency (8) x 1: 8 instances, capped at the topology's 4.
    assert (
        infra(yaml.safe_dump(config)).local("max_instances")["transfer_sftp"]
        == topology.function("transfer_sftp").max_instances
    )
    config["destinations"]["sftp"]["acme"]["max_sessions"] = 3 * concurrency
    assert infra(yaml.safe_dump(config)).local("max_instances")["transfer_sftp"] == 3
    config["destinations"]["sftp"]["slow"] = {
        "host": "h",
        "username": "u",
        "max_sessions": 2 * concurrency * 2,
        "connections_per_file": 2,
    }
    assert infra(yaml.safe_dump(config)).local("max_instances")["transfer_sftp"] == 2  # the tighter partner wins
    config["destinations"]["sftp"]["slow"]["max_sessions"] = 1
    config["destinations"]["sftp"]["slow"]["connections_per_file"] = 4  # still at least one instance
    assert infra(yaml.safe_dump(config)).local("max_instances")["transfer_sftp"] == 1


def test_collect_copy_instances_are_capped_by_the_partners_collect_jobs_read_from(infra, example: Module) -> None:  # type: ignore[no-untyped-def]
    """instances x min(concurrency, max_sessions) <= max_sessions for every partner a collect job
    reads from (before: 4 instances x 2 files, 8 sessions, at a partner allowing 4)."""
    from shared import topology

    concurrency = topology.function("collect_copy").concurrency
    functions = example.instances("google_cloudfunctions2_function", "fn")
    # toast: max_sessions 4 (default); an instance reads up to `concurrency` (2) files at once.
    assert functions["collect_copy"]["service_config"][0]["max_instance_count"] == 4 // concurrency

    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    config["collect"]["partners"]["toast"]["max_sessions"] = 64
    assert infra(yaml.safe_dump(config)).local("max_instances")["collect_copy"] == 4  # the topology's cap
    config["collect"]["partners"]["toast"]["max_sessions"] = 1
    assert infra(yaml.safe_dump(config)).local("max_instances")["collect_copy"] == 1  # still at least one
    config["collect"]["partners"]["toast"]["max_sessions"] = 64
    job = dict(config["collect"]["jobs"][0], name="from-acme", partner="acme")  # a destinations.sftp partner
    config["collect"]["jobs"].append(job)
    config["destinations"]["sftp"]["acme"]["max_sessions"] = 3 * concurrency
    assert infra(yaml.safe_dump(config)).local("max_instances")["collect_copy"] == 3


def _preconditions(module: Module) -> list[tuple[bool, str]]:
    (found,) = module.preconditions("terraform_data", "config_checks").values()
    return found


def test_example_config_passes_every_plan_time_check(example: Module, infra) -> None:  # type: ignore[no-untyped-def]
    assert all(ok is True for ok, _ in _preconditions(example))
    assert example.local("plain_credentials") == []
    bare = infra("project: p\nbucket: b\n")  # no destinations, no alerts: nothing to check
    assert all(ok is True for ok, _ in _preconditions(bare))
    assert set(bare.local("credentials")) == {
        "destinations.box.auth.jwt_config",
        "destinations.box.auth.client_secret",
        "destinations.box.auth.developer_token",
        "alerts.slack_webhook_url",
        "ingest.hash_key",
    }


def test_plan_fails_for_a_credential_that_is_not_an_sm_reference(infra) -> None:  # type: ignore[no-untyped-def]
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    config["destinations"]["sftp"]["acme"]["password"] = "hunter2"
    config["destinations"]["box"]["auth"]["developer_token"] = "env:BOX_TOKEN"
    config["alerts"]["slack_webhook_url"] = "sm://slack-webhook"  # not a full reference
    module = infra(yaml.safe_dump(config))
    failed = [message for ok, message in _preconditions(module) if not ok]
    (message,) = failed
    assert "destinations.sftp.acme.password" in message
    assert "destinations.box.auth.developer_token" in message
    assert "alerts.slack_webhook_url" in message
    assert "hunter2" not in message, "the error names the field, never the credential"
    # The config secret version (which would store the YAML) waits for these checks.
    assert "terraform_data.config_checks" in module.depends_on(
        "resource", "google_secret_manager_secret_version", "config"
    )


def test_plan_fails_for_retry_settings_pubsub_rejects(infra) -> None:  # type: ignore[no-untyped-def]
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    for bad, words in (
        ({"max_delivery_attempts": 4}, "5 to 100"),
        ({"max_delivery_attempts": 101}, "5 to 100"),
        ({"minimum_backoff_s": 30, "maximum_backoff_s": 20}, "0 <= minimum <= maximum <= 600"),
        ({"maximum_backoff_s": 601}, "0 <= minimum <= maximum <= 600"),
        ({"minimum_backoff_s": -1}, "0 <= minimum <= maximum <= 600"),
    ):
        config["pubsub"] = bad
        failed = [message for ok, message in _preconditions(infra(yaml.safe_dump(config))) if not ok]
        assert len(failed) == 1 and words in failed[0], (bad, failed)
    config["pubsub"] = {"max_delivery_attempts": 100, "minimum_backoff_s": 0, "maximum_backoff_s": 600}
    assert all(ok for ok, _ in _preconditions(infra(yaml.safe_dump(config))))


def test_variables_override_the_configs_names(infra) -> None:  # type: ignore[no-untyped-def]
    module = infra(project="other-proj", bucket="other-bucket", region="europe-west1")
    bucket = module.instances("google_storage_bucket", "data")["exports"]
    assert (bucket["name"], bucket["location"]) == ("other-bucket", "EUROPE-WEST1")
    env = module.instances("google_cloudfunctions2_function", "fn")["verify"]["service_config"][0][
        "environment_variables"
    ]
    assert (env["OFFSITE__PROJECT"], env["OFFSITE__BUCKET"], env["OFFSITE__REGION"]) == (
        "other-proj",
        "other-bucket",
        "europe-west1",
    )
    assert module.local("source_bucket") == "other-proj-offsite-sources"


def test_a_domain_scoped_project_gets_a_valid_sources_bucket_name(infra) -> None:  # type: ignore[no-untyped-def]
    """Bucket names take no ':' (and dotted ones need a verified domain): example.com:proj's default."""
    module = infra(project="example.com:bqx-ml")
    assert module.local("source_bucket") == "example-com-bqx-ml-offsite-sources"
    assert module.instances("google_storage_bucket", "data")["sources"]["name"] == "example-com-bqx-ml-offsite-sources"
