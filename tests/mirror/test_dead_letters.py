"""Dead-lettered mirror work (an object's delivery, a reconcile request) becomes a `failed`
result naming the bucket's run and destination (shared/stages/dead_letters.py)."""

from __future__ import annotations

import json
from collections.abc import Callable

from shared.mirror.request import MirrorRequest
from shared.stages.verify import verify
from shared.topology import GCS_DELETED
from tests.mirror.conftest import MirrorStack


def _dead(m: MirrorStack, subscription: str, data: bytes) -> None:
    attributes = {
        "CloudPubSubDeadLetterSourceSubscription": f"projects/{m.info.project}/subscriptions/{subscription}",
        "CloudPubSubDeadLetterSourceDeliveryCount": "5",
    }
    verify(m.pubsub_event(f"{subscription}-dlq", data, attributes), m.config)


def test_a_dead_lettered_mirror_delivery_names_the_bucket_and_destination(
    mirror_factory: Callable[..., MirrorStack],
) -> None:
    m = mirror_factory()
    info = m.put("x/dead.bin", b"never delivered")
    _dead(m, "transfer-sftp-gcs-finalized", json.dumps(m.storage_event(info)["data"]).encode())
    [failed] = m.results()
    assert (failed.status, failed.stage, failed.destination) == ("failed", "transfer_sftp", "sftp:local")
    assert failed.run_id == f"mirror-{m.bucket}"
    assert failed.source is not None and failed.source.label == f"gs://{m.bucket}"


def test_a_dead_lettered_reconcile_names_the_bucket_each_destination_and_the_request(
    mirror_factory: Callable[..., MirrorStack],
) -> None:
    """A request for the whole bucket reconciled no destination: one failed result each (what
    `offsite mirror status` and POST /mirror?wait read), answering the caller's request_id."""
    m = mirror_factory()
    _dead(m, "verify-mirror-reconciles", MirrorRequest(bucket=m.bucket, request_id="http-abc").to_json())
    results = sorted(m.results(), key=lambda r: str(r.destination))
    assert [(r.status, str(r.destination), r.request_id) for r in results] == [
        ("failed", "box", "http-abc"),
        ("failed", "sftp:local", "http-abc"),
    ]
    for failed in results:
        assert failed.run_id == f"mirror-{m.bucket}" and failed.stage == "verify"
        assert failed.source is not None and failed.source.label == f"gs://{m.bucket}"
        assert "dead-lettered after 5 delivery attempts on verify-mirror-reconciles" in (failed.reason or "")


def test_a_dead_lettered_reconcile_of_one_destination_names_it(mirror_factory: Callable[..., MirrorStack]) -> None:
    m = mirror_factory()
    _dead(m, "verify-mirror-reconciles", MirrorRequest(bucket=m.bucket, destination="box").to_json())
    [failed] = m.results()
    assert (failed.status, str(failed.destination), failed.request_id) == ("failed", "box", None)


def test_a_dead_letter_of_a_mirror_trigger_named_by_eventarc_is_read_by_its_topic(
    mirror_factory: Callable[..., MirrorStack],
) -> None:
    """In the cloud a mirror trigger's dead letter names Eventarc's subscription, not ours; its
    dead-letter topic (the delivery function's GCS one, infra/mirror.tf) says what it was."""
    m = mirror_factory(delete="mirror")
    m.finalized(m.put("x/gone.bin", b"delivered, then deleted"))
    info = m.remove("x/gone.bin")
    attributes = {
        "CloudPubSubDeadLetterSourceSubscription": f"projects/{m.info.project}/subscriptions/"
        "eventarc-us-central1-om-upload-box-deleted-0a1b2c3d4e5f-sub-123",
        "CloudPubSubDeadLetterSourceDeliveryCount": "5",
    }
    data = json.dumps(m.storage_event(info, GCS_DELETED)["data"]).encode()
    verify(m.pubsub_event("upload-box-gcs-finalized-dlq", data, attributes), m.config)
    [failed] = m.results()
    assert (failed.status, failed.stage, failed.destination) == ("failed", "upload_box", "box")
    assert failed.run_id == f"mirror-{m.bucket}"
    assert "dead-lettered after 5 delivery attempts on upload-box-gcs-finalized" in (failed.reason or "")
