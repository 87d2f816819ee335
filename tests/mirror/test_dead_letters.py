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


def test_a_dead_lettered_reconcile_names_the_bucket(mirror_factory: Callable[..., MirrorStack]) -> None:
    m = mirror_factory()
    _dead(m, "verify-mirror-reconciles", MirrorRequest(bucket=m.bucket).to_json())
    [failed] = m.results()
    assert (failed.status, failed.run_id) == ("failed", f"mirror-{m.bucket}")
    assert failed.source is not None and failed.source.label == f"gs://{m.bucket}"
    assert "dead-lettered after 5 delivery attempts on verify-mirror-reconciles" in (failed.reason or "")


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
