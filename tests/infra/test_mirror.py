"""infra/mirror.tf from the config's buckets[]: Eventarc triggers per bucket and delivery
function, bucket grants, the reconcile's scheduler job and verify's re-delivery grant."""

from __future__ import annotations

import base64
import json
import re

import yaml

from shared import topology
from tests.infra.hcl_eval import Module

BASE = {
    "project": "p",
    "bucket": "p-exports",
    "destinations": {
        "box": {"auth": {"method": "jwt", "jwt_config": "sm://projects/p/secrets/box/versions/latest"}},
        "sftp": {
            "acme": {
                "host": "h",
                "username": "u",
                "private_key": "sm://projects/p/secrets/k/versions/latest",
                "known_hosts": "sm://projects/p/secrets/kh/versions/latest",
            }
        },
    },
}


def _module(infra, buckets: list[dict]) -> Module:  # type: ignore[no-untyped-def]
    return infra(yaml.safe_dump({**BASE, "buckets": buckets}))


def test_each_bucket_gets_triggers_for_the_functions_of_its_destinations(infra) -> None:  # type: ignore[no-untyped-def]
    module = _module(
        infra,
        [
            {"name": "bqx-ml-models", "destinations": ["box"], "delete": "mirror", "schedule": "0 3 * * *"},
            {"name": "bqx-ml-results", "location": "us"},  # every destination, delete: keep
        ],
    )
    triggers = module.instances("google_eventarc_trigger", "mirror")
    assert set(triggers) == {
        "upload_box/finalized/bqx-ml-models",
        "upload_box/deleted/bqx-ml-models",
        "upload_box/finalized/bqx-ml-results",
        "transfer_sftp/finalized/bqx-ml-results",
    }
    models = triggers["upload_box/deleted/bqx-ml-models"]
    criteria = {c["attribute"]: c["value"] for c in models["matching_criteria"]}
    assert criteria == {"type": topology.GCS_DELETED, "bucket": "bqx-ml-models"}
    assert models["location"] == "us-central1"
    assert triggers["transfer_sftp/finalized/bqx-ml-results"]["location"] == "us"
    (destination,) = models["destination"]
    (run,) = destination["cloud_run_service"]
    assert str(run["service"]) == 'google_cloudfunctions2_function.fn["upload_box"].service_config[0].service'
    assert str(models["service_account"]) == "google_service_account.trigger.email"
    names = [t["name"] for t in triggers.values()]
    assert len(set(names)) == len(names) and all(len(n) <= 63 and n[0].isalpha() for n in names)

    grants = module.instances("google_storage_bucket_iam_member", "mirror")
    assert {(g["bucket"], str(g["member"]).split('"')[1], g["role"]) for g in grants.values()} >= {
        ("bqx-ml-models", "upload_box", "roles/storage.objectViewer"),
        ("bqx-ml-models", "verify", "roles/storage.objectViewer"),
    }
    # verify's reconcile drops a ledger entry whose copy differs (shared/delivery/ledger.py forget)
    assert ("verify", "google_project_iam_custom_role.object_metadata_writer.id") in {
        (str(g["member"]).split('"')[1], str(g["role"])) for g in grants.values() if g["bucket"] == "bqx-ml-models"
    }
    # verify re-delivers (delivery-continuations) and splits a reconcile by destination (mirror-reconciles)
    publishers = module.instances("google_pubsub_topic_iam_member", "mirror_publisher")
    assert {str(g["topic"]).split('"')[1]: str(g["member"]).split('"')[1] for g in publishers.values()} == {
        topology.DELIVERY_CONTINUATIONS: "verify",
        topology.MIRROR_RECONCILES: "verify",
    }
    # POST /mirror/<bucket> publishes the request the schedule would
    (http,) = module.instances("google_pubsub_topic_iam_member", "mirror_http_publisher").values()
    assert str(http["topic"]).split('"')[1] == topology.MIRROR_RECONCILES
    assert str(http["member"]).split('"')[1] == "http_trigger"

    jobs = module.instances("google_cloud_scheduler_job", "mirror")
    assert set(jobs) == {"offsite-mirror-bqx-ml-models"}  # the other entry has no schedule
    (target,) = jobs["offsite-mirror-bqx-ml-models"]["pubsub_target"]
    assert json.loads(base64.b64decode(target["data"])) == {"bucket": "bqx-ml-models"}
    assert str(target["topic_name"]) == f'google_pubsub_topic.pipeline["{topology.MIRROR_RECONCILES}"].id'
    assert jobs["offsite-mirror-bqx-ml-models"]["schedule"] == "0 3 * * *"


def test_the_delivery_functions_kinds_match_the_topology(infra) -> None:  # type: ignore[no-untyped-def]
    module = _module(infra, [])
    served = {fn.name: set(fn.serves) for fn in topology.FUNCTIONS if fn.serves}
    assert {fn: set(kinds) for fn, kinds in module.local("delivery_function_kinds").items()} == served


def test_no_buckets_no_mirror_resources(infra) -> None:  # type: ignore[no-untyped-def]
    module = _module(infra, [])
    assert module.instances("google_eventarc_trigger", "mirror") == {}
    assert module.instances("google_cloud_scheduler_job", "mirror") == {}
    assert not module.instances("google_pubsub_topic_iam_member", "mirror_publisher")
    assert not module.instances("google_pubsub_topic_iam_member", "mirror_http_publisher")


def test_mirror_triggers_get_the_dead_letter_retry_and_ack_deadline_policy(infra) -> None:  # type: ignore[no-untyped-def]
    buckets = [
        {"name": "bqx-ml-models", "destinations": ["box"], "delete": "mirror"},
        {"name": "bqx-ml-results", "location": "us"},
    ]
    module = _module(infra, buckets)
    triggers = module.instances("google_eventarc_trigger", "mirror")
    attach = module.instances("terraform_data", "mirror_dead_letter")
    assert set(attach) == set(triggers)
    own = {s.function: s.dead_letter_topic for s in topology.subscriptions() if s.trigger.kind == "gcs"}
    reported = {r.topic for r in topology.dead_letter_reports()}
    retry = topology.DEFAULT_RETRY
    for key, trigger in triggers.items():
        function = key.split("/")[0]
        (provisioner,) = attach[key]["provisioner"]
        assert provisioner["__labels__"] == ["local-exec"]
        assert provisioner["command"].endswith("/scripts/attach-dead-letter.sh")
        env = provisioner["environment"]
        assert str(env["TRIGGER"]) == f'google_eventarc_trigger.mirror["{key}"].id'
        assert env["REGION"] == trigger["location"]
        # the function's own GCS dead-letter topic: it has a pull subscription and a report subscription
        assert own[function] in reported
        assert str(env["DEAD_LETTER_TOPIC"]) == f'google_pubsub_topic.dead_letter["{own[function]}"].id'
        assert env["MAX_DELIVERY_ATTEMPTS"] == retry.max_delivery_attempts
        assert (env["MIN_RETRY_DELAY"], env["MAX_RETRY_DELAY"]) == (
            f"{retry.minimum_backoff_s}s",
            f"{retry.maximum_backoff_s}s",
        )
        assert env["ACK_DEADLINE"] == 600 and attach[key]["triggers_replace"]["ack_deadline_s"] == 600
        assert str(env["PUBSUB_AGENT"]).startswith("serviceAccount:")
    assert attach["transfer_sftp/finalized/bqx-ml-results"]["provisioner"][0]["environment"]["REGION"] == "us"
    assert set(module.instances("google_pubsub_topic", "dead_letter")) >= set(own.values())
    assert {f"{t}-report" for t in own.values()} <= set(
        module.instances("google_pubsub_subscription", "dead_letter_report")
    )
    depends = module.depends_on("resource", "terraform_data", "mirror_dead_letter")
    assert "terraform_data.dead_letter_preflight" in depends
    assert "google_pubsub_topic_iam_member.dead_letter_publisher" in depends
    # 600 s covers the delivery functions' longest invocation and is Pub/Sub's maximum.
    assert max(topology.function(f).timeout_s for f in own if f != "verify") <= 600


def test_mirror_dead_letters_can_be_switched_off(infra) -> None:  # type: ignore[no-untyped-def]
    module = infra(
        yaml.safe_dump({**BASE, "buckets": [{"name": "bqx-ml-models", "delete": "mirror"}]}),
        attach_eventarc_dead_letters=False,
    )
    assert module.instances("google_eventarc_trigger", "mirror")
    assert module.instances("terraform_data", "mirror_dead_letter") == {}


def test_a_dotted_bucket_name_makes_a_valid_scheduler_job_name(infra) -> None:  # type: ignore[no-untyped-def]
    """Cloud Scheduler job ids are letters, digits, '-' and '_'; a domain-named bucket holds dots."""
    module = _module(infra, [{"name": "models.bqx-ml.example.com", "schedule": "0 3 * * *"}])
    (job,) = module.instances("google_cloud_scheduler_job", "mirror").values()
    assert job["name"] == "offsite-mirror-models-bqx-ml-example-com"
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,500}", job["name"])
