"""infra/ingest.tf over the example config's `ingest:` section, and without one."""

from __future__ import annotations

from collections.abc import Callable

from tests.infra.conftest import scheduled_message
from tests.infra.hcl_eval import Module


def test_ingest_is_scheduled_incrementally_and_fully(example: Module) -> None:
    jobs = {k: j for k, j in example.instances("google_cloud_scheduler_job", "job").items() if "ingest" in k}
    assert {name: (job["schedule"], scheduled_message(job)) for name, job in jobs.items()} == {
        "offsite-ingest-incremental": ("*/15 * * * *", {}),
        "offsite-ingest-full": ("30 2 * * *", {"full": True}),
    }
    for job in jobs.values():
        (target,) = job["pubsub_target"]
        assert str(target["topic_name"]) == 'google_pubsub_topic.pipeline["ingest-requests"].id'
        assert target["attributes"]["origin"] == "cloud-scheduler"


def test_snapshot_finalize_reaches_ingest_snapshots_and_only_the_snapshot_is_readable(example: Module) -> None:
    (notification,) = example.instances("google_storage_notification", "ingest_snapshot").values()
    assert notification["bucket"] == "bqx-ml-app-snapshots"
    assert notification["object_name_prefix"] == "app.sqlite"
    assert notification["event_types"] == ["OBJECT_FINALIZE"]
    assert str(notification["topic"]) == 'google_pubsub_topic.pipeline["ingest-snapshots"].id'
    (reader,) = example.instances("google_storage_bucket_iam_member", "ingest_snapshot_reader").values()
    assert reader["role"] == "roles/storage.objectViewer"
    assert reader["condition"][0]["expression"] == (
        'resource.name == "projects/_/buckets/bqx-ml-app-snapshots/objects/app.sqlite"'
    )


def test_ingest_writes_only_its_own_dataset(example: Module) -> None:
    (dataset,) = example.instances("google_bigquery_dataset", "ingest").values()
    assert dataset["dataset_id"] == "app_mirror"
    (grant,) = example.instances("google_bigquery_dataset_iam_member", "ingest_editor").values()
    assert str(grant["role"]) == "google_project_iam_custom_role.ingest_writer[0].id"
    assert "ingest_sqlite" in str(grant["member"])
    (role,) = example.instances("google_project_iam_custom_role", "ingest_writer").values()
    assert not [p for p in role["permissions"] if not p.startswith(("bigquery.tables.", "bigquery.datasets.get"))]


def test_without_an_ingest_section_nothing_of_it_is_created(infra: Callable[..., Module]) -> None:
    bare = infra("project: p\nbucket: b\n")
    assert not [k for k in bare.instances("google_cloud_scheduler_job", "job") if "ingest" in k]
    for rtype, name in (
        ("google_storage_notification", "ingest_snapshot"),
        ("google_bigquery_dataset", "ingest"),
        ("google_bigquery_dataset_iam_member", "ingest_editor"),
    ):
        assert bare.instances(rtype, name) == {}, rtype


def test_ingest_schedules_follow_the_config(infra: Callable[..., Module]) -> None:
    config = "project: p\nbucket: b\ningest: {sqlite_path: /x.db, dataset: app, schedule: null, full_schedule: '0 4 * * 0'}\n"
    jobs = {k: j for k, j in infra(config).instances("google_cloud_scheduler_job", "job").items() if "ingest" in k}
    assert {name: job["schedule"] for name, job in jobs.items()} == {"offsite-ingest-full": "0 4 * * 0"}


def test_ingest_schedules_run_in_the_configured_time_zone(infra: Callable[..., Module]) -> None:
    config = "project: p\nbucket: b\ningest: {sqlite_path: /x.db, dataset: app, full_schedule: '30 7 * * *', time_zone: Asia/Kolkata}\n"
    jobs = {k: j for k, j in infra(config).instances("google_cloud_scheduler_job", "job").items() if "ingest" in k}
    assert {name: (job["schedule"], job["time_zone"]) for name, job in jobs.items()} == {
        "offsite-ingest-incremental": ("*/15 * * * *", "Asia/Kolkata"),
        "offsite-ingest-full": ("30 7 * * *", "Asia/Kolkata"),
    }
    utc = infra("project: p\nbucket: b\ningest: {sqlite_path: /x.db, dataset: app}\n")
    assert {j["time_zone"] for k, j in utc.instances("google_cloud_scheduler_job", "job").items() if "ingest" in k} == {
        "UTC"
    }
