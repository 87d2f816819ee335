"""``offsite dlq replay`` of a mirrored bucket's dead-lettered object delete: the delete cannot be
fired again (the object is gone), so the bucket's reconcile is asked for instead, which removes
the copy; the object is never rewritten (that would fire a finalize, the opposite event)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import pytest
from typer.testing import CliRunner

from offsite.cli import app
from shared.gcp import gcs
from shared.mirror.request import MirrorRequest
from shared.stages.verify import verify
from shared.topology import GCS_DELETED, MIRROR_RECONCILES
from tests.mirror.conftest import MirrorStack

pytestmark = pytest.mark.stack

DLQ = "upload-box-gcs-finalized-dlq"
EVENTARC_DELETE_SUB = "eventarc-us-central1-om-upload-box-deleted-0a1b2c3d4e5f-sub-123"


def _attributes(m: MirrorStack, name: str, sent_by: str) -> dict[str, str]:
    if sent_by == "notification":  # a GCS notification, as the local relay forwards it
        return {"eventType": "OBJECT_DELETE", "bucketId": m.bucket, "objectId": name}
    # in the cloud: Eventarc's subscription of the mirror delete trigger (infra/mirror.tf)
    return {"CloudPubSubDeadLetterSourceSubscription": f"projects/{m.info.project}/subscriptions/{EVENTARC_DELETE_SUB}"}


@pytest.mark.parametrize("sent_by", ["notification", "eventarc"])
def test_a_dead_lettered_delete_is_replayed_as_a_reconcile(
    mirror_factory: Callable[..., MirrorStack], sent_by: str
) -> None:
    m = mirror_factory(delete="mirror")
    m.finalized(m.put("x/gone.bin", b"delivered, then deleted"))
    assert "x/gone.bin" in m.copies("box")
    info = m.remove("x/gone.bin")
    data = json.dumps(m.storage_event(info, GCS_DELETED)["data"]).encode()
    m.admin.publish(DLQ, data, CloudPubSubDeadLetterSourceDeliveryCount="5", **_attributes(m, "x/gone.bin", sent_by))
    m.admin.create_topic(MIRROR_RECONCILES)
    watch = f"mrec-{uuid.uuid4().hex[:10]}"
    m.admin.create_subscription(watch, MIRROR_RECONCILES)

    replayed = CliRunner().invoke(app, ["dlq", "replay", "-s", "upload-box-gcs-finalized", "--json"])
    assert replayed.exit_code == 0, replayed.output
    [outcome] = json.loads(replayed.stdout)["messages"]
    assert outcome["replayed"] is True and f"published a reconcile of {m.bucket}" in outcome["done"]
    assert gcs.stat(m.bucket, "x/gone.bin") is None  # not rewritten
    [request] = m.admin.pull(watch, 10)
    assert MirrorRequest.from_json(request["data_bytes"]) == MirrorRequest(bucket=m.bucket)

    verify(m.pubsub_event(MIRROR_RECONCILES, request["data_bytes"]), m.config)  # what the reconcile does:
    for per_destination in m.handed_on(2):  # one request per destination, each in its own invocation
        verify(m.pubsub_event(MIRROR_RECONCILES, per_destination.to_json()), m.config)
    assert "x/gone.bin" not in m.copies("box") and "x/gone.bin" not in m.copies("sftp:local")


def test_a_dead_lettered_delete_does_not_rewrite_a_newer_object_of_its_name(
    mirror_factory: Callable[..., MirrorStack],
) -> None:
    m = mirror_factory(delete="mirror")
    info = m.put("x/back.bin", b"first")
    gcs.delete(m.bucket, "x/back.bin")
    again = m.put("x/back.bin", b"a newer object of the same name")
    data = json.dumps(m.storage_event(info, GCS_DELETED)["data"]).encode()
    m.admin.publish(DLQ, data, eventType="OBJECT_DELETE", CloudPubSubDeadLetterSourceDeliveryCount="5")

    replayed = CliRunner().invoke(app, ["dlq", "replay", "-s", "upload-box-gcs-finalized", "--json"])
    assert replayed.exit_code == 0, replayed.output
    assert m.stat("x/back.bin").generation == again.generation  # no finalize fired for it
