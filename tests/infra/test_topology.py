"""infra/ declares exactly shared/topology.py: topics, functions, feeds, retry and dead letters."""

from __future__ import annotations

import yaml

from shared import topology
from shared.config import PubSubSettings
from tests.infra.conftest import EXAMPLE_CONFIG, INFRA
from tests.infra.hcl_eval import Module, Ref, Template
from tests.infra.hcl_values import Key

GCS = {s.name: s for s in topology.subscriptions() if s.trigger.kind == "gcs"}
AUDIT = {s.name: s for s in topology.subscriptions() if s.trigger.kind == "auditlog"}
EVENTARC = {**GCS, **AUDIT}
PUBSUB = {s.name: s for s in topology.subscriptions() if s.trigger.kind == "pubsub"}


def ref(*parts: object) -> str:
    """How hcl_eval renders a reference, e.g. google_pubsub_topic.dead_letter["x"].id."""
    out = ""
    for i, part in enumerate(parts):
        out += f'["{part}"]' if isinstance(part, str) and i == 2 else ("." if i else "") + str(part)
    return out


def test_topics_are_the_topologys(example: Module) -> None:
    names = {inst["name"] for inst in example.instances("google_pubsub_topic", "pipeline").values()}
    assert names == set(topology.TOPICS)


def test_every_trigger_has_a_dead_letter_topic_with_a_pull_subscription(example: Module) -> None:
    expected = {s.dead_letter_topic for s in topology.subscriptions()} | {topology.REPORTS_DEAD_LETTER_TOPIC}
    topics = example.instances("google_pubsub_topic", "dead_letter")
    assert {t["name"] for t in topics.values()} == expected
    subs = example.instances("google_pubsub_subscription", "dead_letter")
    assert {s["name"] for s in subs.values()} == {f"{t}-sub" for t in expected}
    for key, sub in subs.items():
        assert str(sub["topic"]) == ref("google_pubsub_topic", "dead_letter", key, "id")
        assert sub["expiration_policy"] == [{"ttl": ""}], "a dead-letter subscription must never expire"
        assert "push_config" not in sub, "dead-letter subscriptions are pulled"


def test_pubsub_triggers_are_push_subscriptions_with_retry_and_dead_letter(example: Module) -> None:
    feeds = example.instances("google_pubsub_subscription", "feed")
    assert {f["name"] for f in feeds.values()} == set(PUBSUB)
    retry = topology.DEFAULT_RETRY
    for name, spec in PUBSUB.items():
        feed = feeds[name]
        fn = topology.function(spec.function)
        assert str(feed["topic"]) == ref("google_pubsub_topic", "pipeline", spec.trigger.topic, "id")
        assert feed["retry_policy"] == [
            {"minimum_backoff": f"{retry.minimum_backoff_s}s", "maximum_backoff": f"{retry.maximum_backoff_s}s"}
        ]
        (dlq,) = feed["dead_letter_policy"]
        assert str(dlq["dead_letter_topic"]) == ref("google_pubsub_topic", "dead_letter", spec.dead_letter_topic, "id")
        assert dlq["max_delivery_attempts"] == retry.max_delivery_attempts
        assert feed["ack_deadline_seconds"] == min(600, fn.timeout_s)
        assert feed["expiration_policy"] == [{"ttl": ""}]
        (push,) = feed["push_config"]
        uri = ref("google_cloudfunctions2_function", "fn", spec.function, "service_config") + "[0].uri"
        assert isinstance(push["push_endpoint"], Template)
        assert str(push["push_endpoint"]) == "${" + uri + "}" + f"/projects/bqx-ml/topics/{spec.trigger.topic}"
        (oidc,) = push["oidc_token"]
        assert str(oidc["service_account_email"]) == "google_service_account.trigger.email"
        assert str(oidc["audience"]) == uri


def test_gcs_triggers_are_eventarc_finalize_on_the_exports_bucket_with_retry(example: Module) -> None:
    functions = example.instances("google_cloudfunctions2_function", "fn")
    with_trigger = {name for name, fn in functions.items() if fn.get("event_trigger")}
    assert with_trigger == {s.function for s in EVENTARC.values()}
    for spec in GCS.values():
        (trigger,) = functions[spec.function]["event_trigger"]
        assert trigger["event_type"] == topology.GCS_FINALIZED == spec.trigger.event_type
        assert trigger["retry_policy"] == "RETRY_POLICY_RETRY"
        assert trigger["event_filters"] == [
            {"attribute": "bucket", "value": Ref(("google_storage_bucket", "data", Key("exports"), "name"))}
        ]
        assert trigger["trigger_region"] == "us-central1"
        assert str(trigger["service_account_email"]) == "google_service_account.trigger.email"


def test_bigquery_job_completion_is_an_eventarc_audit_log_trigger_of_export_table(example: Module) -> None:
    """type google.cloud.audit.log.v1.written, serviceName bigquery.googleapis.com, methodName
    google.cloud.bigquery.v2.JobService.InsertJob (BigQueryAuditMetadata; docs/exports.md)."""
    functions = example.instances("google_cloudfunctions2_function", "fn")
    assert {s.function for s in AUDIT.values()} == {"export_table"}
    for spec in AUDIT.values():
        (trigger,) = functions[spec.function]["event_trigger"]
        assert trigger["event_type"] == "google.cloud.audit.log.v1.written" == spec.trigger.event_type
        filters = [(f["attribute"], f["value"]) for f in trigger["event_filters"]]
        assert filters == [
            ("serviceName", "bigquery.googleapis.com"),
            ("methodName", "google.cloud.bigquery.v2.JobService.InsertJob"),
        ]
        assert filters == list(spec.trigger.filters)
        assert trigger["retry_policy"] == "RETRY_POLICY_RETRY"
        # global: the entries of jobs in every location (US and EU multi-regions included)
        assert trigger["trigger_region"] == "global"
        (attach,) = [
            a for name, a in example.instances("terraform_data", "gcs_dead_letter").items() if name == spec.name
        ]
        assert attach["provisioner"][0]["environment"]["REGION"] == "global"
        assert str(trigger["service_account_email"]) == "google_service_account.trigger.email"
    receivers = example.instances("google_project_iam_member", "trigger_event_receiver")
    (receiver,) = receivers.values()
    assert receiver["role"] == "roles/eventarc.eventReceiver"
    assert str(receiver["member"]) == "serviceAccount:${google_service_account.trigger.email}"
    invokers = example.instances("google_cloud_run_v2_service_iam_member", "trigger_invoker")
    assert invokers["export_table"]["role"] == "roles/run.invoker"


def test_eventarc_subscriptions_get_the_same_retry_and_dead_letter_policy(example: Module) -> None:
    attach = example.instances("terraform_data", "gcs_dead_letter")
    assert set(attach) == set(EVENTARC)
    retry = topology.DEFAULT_RETRY
    for name, spec in EVENTARC.items():
        (provisioner,) = attach[name]["provisioner"]
        assert provisioner["__labels__"] == ["local-exec"]
        assert provisioner["command"].endswith("/scripts/attach-dead-letter.sh")
        env = provisioner["environment"]
        assert (
            str(env["TRIGGER"])
            == ref("google_cloudfunctions2_function", "fn", spec.function, "event_trigger") + "[0].trigger"
        )
        assert str(env["DEAD_LETTER_TOPIC"]) == ref("google_pubsub_topic", "dead_letter", spec.dead_letter_topic, "id")
        assert env["MAX_DELIVERY_ATTEMPTS"] == retry.max_delivery_attempts
        assert (env["MIN_RETRY_DELAY"], env["MAX_RETRY_DELAY"]) == (
            f"{retry.minimum_backoff_s}s",
            f"{retry.maximum_backoff_s}s",
        )


def test_attaching_eventarc_dead_letters_can_be_switched_off(infra) -> None:  # type: ignore[no-untyped-def]
    assert infra(attach_eventarc_dead_letters=False).instances("terraform_data", "gcs_dead_letter") == {}


def test_functions_match_the_topology(example: Module) -> None:
    functions = example.instances("google_cloudfunctions2_function", "fn")
    assert set(functions) == {fn.name for fn in topology.FUNCTIONS}
    for spec in topology.FUNCTIONS:
        fn = functions[spec.name]
        assert fn["name"] == spec.name.replace("_", "-")
        (build,) = fn["build_config"]
        assert build["entry_point"] == spec.entry_point
        assert build["runtime"] == "python311"
        (source,) = build["source"]
        assert str(source["storage_source"][0]["object"]) == ref(
            "google_storage_bucket_object", "archive", spec.source, "name"
        )
        (service,) = fn["service_config"]
        assert service["timeout_seconds"] == spec.timeout_s
        assert service["available_memory"] == f"{spec.memory_mb}M"
        # transfer_sftp's and collect_copy's caps follow the partners' max_sessions (test_config_driven)
        if spec.name not in ("transfer_sftp", "collect_copy"):
            assert service["max_instance_count"] == spec.max_instances
        assert service["max_instance_request_concurrency"] == spec.concurrency
        assert service["available_cpu"] == ("1" if spec.concurrency > 1 else None)
        assert service["environment_variables"]["THREADS"] == str(spec.concurrency)
        assert service["min_instance_count"] == 0
        # only the HTTP trigger is reached from outside (by its invokers: tests/infra/test_http.py)
        assert service["ingress_settings"] == ("ALLOW_ALL" if spec.http else "ALLOW_INTERNAL_ONLY")
        assert str(service["service_account_email"]) == ref("google_service_account", "function", spec.name, "email")
        env = service["environment_variables"]
        assert env["OFFSITE_CONFIG"] == "/etc/offsite/offsite.yaml"
        (volume,) = service["secret_volumes"]
        assert volume["mount_path"] == "/etc/offsite" and volume["versions"][0]["path"] == "offsite.yaml"
        assert str(volume["versions"][0]["version"]) == "google_secret_manager_secret_version.config.version"
    # The config secret holds the YAML exactly as given.
    (version,) = example.instances("google_secret_manager_secret_version", "config").values()
    assert version["secret_data"] == EXAMPLE_CONFIG.read_text()


def test_archives_are_uploaded_under_their_md5(example: Module, archives_dir) -> None:  # type: ignore[no-untyped-def]
    import hashlib

    objects = example.instances("google_storage_bucket_object", "archive")
    assert set(objects) == {fn.source for fn in topology.FUNCTIONS}
    for source, obj in objects.items():
        md5 = hashlib.md5((archives_dir / f"{source}.zip").read_bytes()).hexdigest()
        assert obj["name"] == f"functions/{source}-{md5}.zip"
        assert obj["source"] == f"{archives_dir}/{source}.zip"


def test_terraform_retry_defaults_are_the_configs_and_the_topologys(infra) -> None:  # type: ignore[no-untyped-def]
    bare = infra("project: p\nbucket: b\n")
    defaults = PubSubSettings()
    assert bare.local("pubsub") == {
        "max_delivery_attempts": defaults.max_delivery_attempts,
        "minimum_backoff_s": defaults.minimum_backoff_s,
        "maximum_backoff_s": defaults.maximum_backoff_s,
    }
    retry = topology.DEFAULT_RETRY
    assert (retry.max_delivery_attempts, retry.minimum_backoff_s, retry.maximum_backoff_s) == (
        defaults.max_delivery_attempts,
        defaults.minimum_backoff_s,
        defaults.maximum_backoff_s,
    )
    assert bare.local("expiration_days") == 30
    assert set(bare.instances("google_cloud_scheduler_job", "job")) == {
        "offsite-verify-sweep",
        "offsite-export-finalize-sweep",
    }


def test_config_retry_policy_reaches_every_feed(infra) -> None:  # type: ignore[no-untyped-def]
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    config["pubsub"] = {"max_delivery_attempts": 9, "minimum_backoff_s": 20, "maximum_backoff_s": 300}
    module = infra(yaml.safe_dump(config))
    for feed in module.instances("google_pubsub_subscription", "feed").values():
        assert feed["dead_letter_policy"][0]["max_delivery_attempts"] == 9
        assert feed["retry_policy"] == [{"minimum_backoff": "20s", "maximum_backoff": "300s"}]
    for attach in module.instances("terraform_data", "gcs_dead_letter").values():
        env = attach["provisioner"][0]["environment"]
        assert (env["MAX_DELIVERY_ATTEMPTS"], env["MIN_RETRY_DELAY"], env["MAX_RETRY_DELAY"]) == (9, "20s", "300s")


def test_io_bound_functions_take_concurrent_requests() -> None:
    """Uploads and verify wait on the network: many requests per instance; the BigQuery side few."""
    concurrency = {fn.name: fn.concurrency for fn in topology.FUNCTIONS}
    for name in ("upload_box", "transfer_sftp", "verify", "export_table"):  # export_table waits on BigQuery's API
        assert 8 <= concurrency[name] <= 16, name
    assert 1 < concurrency["fan_out"] <= 4
    # 100 tables fan out to 100 export starts at once (the local push honours the same limit)
    assert topology.function("export_table").max_concurrent_requests >= 100
    # Cloud Run serves more than one request at once only with a whole vCPU; memory above 1 GiB
    # needs one too, and below 512 MiB the second-generation environment is not advised.
    for fn in topology.FUNCTIONS:
        assert 512 <= fn.memory_mb <= 4096, fn.name
    # export_table only starts and waits on BigQuery jobs in the cloud: no table data in memory.
    assert topology.function("export_table").memory_mb == 512


def test_eventarc_subscriptions_get_a_600s_ack_deadline(example: Module) -> None:
    attach = example.instances("terraform_data", "gcs_dead_letter")
    for name in EVENTARC:
        env = attach[name]["provisioner"][0]["environment"]
        assert env["ACK_DEADLINE"] == 600
        assert attach[name]["triggers_replace"]["ack_deadline_s"] == 600
    # 600 s covers the longest Eventarc-triggered function (540 s) and is Pub/Sub's maximum.
    assert max(topology.function(s.function).timeout_s for s in EVENTARC.values()) <= 600


def test_dead_letter_credentials_are_checked_before_the_triggers_exist(example: Module, infra) -> None:  # type: ignore[no-untyped-def]
    (preflight,) = example.instances("terraform_data", "dead_letter_preflight").values()
    (provisioner,) = preflight["provisioner"]
    assert provisioner["command"].endswith("/scripts/attach-dead-letter.sh --check")
    assert provisioner["environment"] == {"PROJECT": "bqx-ml", "IMPERSONATE_SERVICE_ACCOUNT": ""}
    assert "terraform_data.dead_letter_preflight" in example.depends_on(
        "resource", "google_cloudfunctions2_function", "fn"
    )
    assert infra(attach_eventarc_dead_letters=False).instances("terraform_data", "dead_letter_preflight") == {}
    # The script acts as the same account as the provider when Terraform impersonates one.
    sa = "deployer@bqx-ml.iam.gserviceaccount.com"
    module = infra(impersonate_service_account=sa)
    for attach in module.instances("terraform_data", "gcs_dead_letter").values():
        assert attach["provisioner"][0]["environment"]["IMPERSONATE_SERVICE_ACCOUNT"] == sa
    versions = (INFRA / "versions.tf").read_text()
    assert "impersonate_service_account = var.impersonate_service_account" in versions


def test_every_dead_letter_topic_reports_to_verify(example: Module) -> None:
    """Dead letters become `failed` results: each DLQ pushes to verify (shared/stages/dead_letters.py)."""
    reports = example.instances("google_pubsub_subscription", "dead_letter_report")
    assert set(reports) == {r.name for r in topology.dead_letter_reports()}
    for report in topology.dead_letter_reports():
        sub = reports[report.name]
        assert str(sub["topic"]) == ref("google_pubsub_topic", "dead_letter", report.topic, "id")
        (push,) = sub["push_config"]
        uri = ref("google_cloudfunctions2_function", "fn", report.function, "service_config") + "[0].uri"
        assert str(push["push_endpoint"]) == "${" + uri + "}" + f"/projects/bqx-ml/topics/{report.topic}"
        (dlq,) = sub["dead_letter_policy"]
        assert str(dlq["dead_letter_topic"]) == ref(
            "google_pubsub_topic", "dead_letter", topology.REPORTS_DEAD_LETTER_TOPIC, "id"
        )
        assert sub["retry_policy"]
