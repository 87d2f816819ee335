"""The exports and sources buckets: private, uniform access, lifecycle, no versioning."""

from __future__ import annotations

import yaml

from tests.infra.conftest import EXAMPLE_CONFIG
from tests.infra.hcl_eval import Module


def test_exports_bucket_settings(example: Module) -> None:
    bucket = example.instances("google_storage_bucket", "data")["exports"]
    assert bucket["name"] == "bqx-ml-offsite-exports"
    assert bucket["location"] == "US-CENTRAL1"  # same region as the functions and their Eventarc triggers
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert bucket["versioning"] == [{"enabled": False}]
    assert bucket["lifecycle_rule"] == [{"condition": [{"age": 30}], "action": [{"type": "Delete"}]}]
    assert bucket["force_destroy"] is False
    # Soft delete off: deleted/overwritten exports are not kept (and billed) for 7 more days.
    assert bucket["soft_delete_policy"] == [{"retention_duration_seconds": 0}]


def test_lifecycle_follows_expiration_days(infra) -> None:  # type: ignore[no-untyped-def]
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    config["expiration_days"] = 7
    bucket = infra(yaml.safe_dump(config)).instances("google_storage_bucket", "data")["exports"]
    assert bucket["lifecycle_rule"][0]["condition"] == [{"age": 7}]


def test_state_bucket_is_apart_from_exports(example: Module) -> None:
    """Markers, history, alerts and checkpoints: a bucket no trigger listens to."""
    bucket = example.instances("google_storage_bucket", "data")["state"]
    assert bucket["name"] == "bqx-ml-offsite-exports-state"  # config state_bucket, default '<bucket>-state'
    assert bucket["uniform_bucket_level_access"] is True and bucket["public_access_prevention"] == "enforced"
    assert bucket["lifecycle_rule"] == [{"condition": [{"age": 90}], "action": [{"type": "Delete"}]}]
    watched = {
        str(f["value"])
        for fn in example.instances("google_cloudfunctions2_function", "fn").values()
        for trigger in fn.get("event_trigger") or []
        for f in trigger["event_filters"]
        if f["attribute"] == "bucket"
    }
    assert watched == {'google_storage_bucket.data["exports"].name'}  # no trigger on the state bucket


def test_sources_bucket_is_private_too(example: Module) -> None:
    bucket = example.instances("google_storage_bucket", "data")["sources"]
    assert bucket["name"] == "bqx-ml-offsite-sources"
    # archives are kept (no lifecycle rule) and soft delete stays at the bucket's default
    assert bucket.get("lifecycle_rule", []) == [] and bucket.get("soft_delete_policy", []) == []
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"


def test_no_iam_binding_opens_anything_to_the_public(example: Module) -> None:
    for rtype, name in example.resources:
        if rtype.endswith("_iam_member"):
            for attrs in example.instances(rtype, name).values():
                assert str(attrs["member"]) not in ("allUsers", "allAuthenticatedUsers"), f"{rtype}.{name}"
