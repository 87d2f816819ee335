"""fake-gcs-server → Pub/Sub → relay → Eventarc-style storage CloudEvents, with retries and dead letters.

One private stack for the module: no functions; the events of upload_box and verify go to an
in-process recording endpoint instead (start_stack(targets=…)). Backoff is shortened by a
config overlay so redelivery tests stay quick.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cloudevents.http import from_http

from devstack.state import StackInfo
from shared.events import parse_pubsub, parse_storage
from shared.topology import GCS_FINALIZED, PUBSUB_PUBLISHED
from tests.private_stacks import BARE, private_stack
from tests.stack.sink import Received, RecordingSink

FAIL = "fail/"


def _status(path: str, body: object) -> int:
    if isinstance(body, dict) and str(body.get("subject", "")).startswith(f"objects/{FAIL}"):
        return 500
    return 204


@pytest.fixture(scope="module")
def sink() -> Iterator[RecordingSink]:
    recorder = RecordingSink(_status)
    yield recorder
    recorder.close()


@pytest.fixture(scope="module")
def events_stack(stack_root_factory: Callable[[str], Path], sink: RecordingSink) -> Iterator[StackInfo]:
    targets = {"upload_box": f"{sink.url}/upload_box", "verify": f"{sink.url}/verify"}
    quick = "pubsub: {minimum_backoff_s: 0, maximum_backoff_s: 1}\n"
    with private_stack(stack_root_factory, "events", quick, functions=False, without=BARE, targets=targets) as info:
        yield info


def _bucket(info: StackInfo):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(
        project=info.project, credentials=AnonymousCredentials(), client_options={"api_endpoint": info.gcs_url}
    )
    return client.bucket(info.bucket)


def _for(name: str, path: str) -> Callable[[list[Received]], bool]:
    return lambda got: any(
        r.path == path and isinstance(r.body, dict) and r.body.get("subject") == f"objects/{name}" for r in got
    )


def test_upload_produces_a_finalized_cloudevent(events_stack: StackInfo, sink: RecordingSink) -> None:
    name = f"exports/sales/orders/{uuid.uuid4().hex}/part-000000000000.csv.gz"
    blob = _bucket(events_stack).blob(name)
    blob.metadata = {"offsite-run": "r1"}
    blob.upload_from_string(b"a,b\n1,2\n", content_type="application/gzip")
    got = sink.wait_for(_for(name, "/upload_box"))
    request = next(r for r in got if r.path == "/upload_box" and r.body.get("subject") == f"objects/{name}")
    assert request.headers["content-type"] == "application/cloudevents+json"
    event = from_http(request.headers, json.dumps(request.body))  # a valid structured CloudEvent
    assert event["type"] == GCS_FINALIZED
    assert event["source"] == f"//storage.googleapis.com/projects/_/buckets/{events_stack.bucket}"
    assert event["id"] and event["time"]
    obj = parse_storage(request.body)
    blob.reload()
    assert (obj.bucket, obj.name, obj.size, obj.generation) == (events_stack.bucket, name, 8, blob.generation)
    assert obj.md5 == blob.md5_hash and obj.crc32c == blob.crc32c
    assert obj.metadata == {"offsite-run": "r1"}
    assert request.body["data"]["metageneration"] == "1"
    # verify has a GCS trigger too: it gets its own copy of the event.
    sink.wait_for(_for(name, "/verify"))


def test_only_finalize_is_forwarded(events_stack: StackInfo, sink: RecordingSink) -> None:
    name = f"other/{uuid.uuid4().hex}.txt"
    blob = _bucket(events_stack).blob(name)
    blob.upload_from_string(b"x")
    sink.wait_for(_for(name, "/upload_box"))
    blob.delete()
    relay_log = Path(events_stack.component("relay").log)
    deadline = time.monotonic() + 60
    while f'"object": "{name}", "status": 204, "note": "ignored OBJECT_DELETE"' not in relay_log.read_text():
        assert time.monotonic() < deadline, "the relay never saw the delete notification"
        time.sleep(0.1)
    mine = [r for r in sink.received if isinstance(r.body, dict) and r.body.get("subject") == f"objects/{name}"]
    assert {r.body["type"] for r in mine} == {GCS_FINALIZED}


def test_a_500_is_redelivered_then_dead_lettered(events_stack: StackInfo, sink: RecordingSink) -> None:
    name = f"{FAIL}{uuid.uuid4().hex}.bin"
    _bucket(events_stack).blob(name).upload_from_string(b"will fail")
    admin = events_stack.pubsub_admin()
    dlq_sub = events_stack.dead_letter_subscriptions["upload-box-gcs-finalized"]
    dead: list[dict] = []
    deadline = time.monotonic() + 120
    while not dead:
        assert time.monotonic() < deadline, "the failing event never reached the dead-letter topic"
        dead = [m for m in admin.pull(dlq_sub) if m["attributes"].get("objectId") == name]
        time.sleep(0.5)
    attempts = [r for r in sink.received if r.path == "/upload_box" and r.body.get("subject") == f"objects/{name}"]
    assert len(attempts) == 5  # pubsub.max_delivery_attempts of the generated config
    assert len({r.body["id"] for r in attempts}) == 1, "a redelivery keeps the event id (idempotency key)"
    assert dead[0]["attributes"]["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
    assert dead[0]["attributes"]["eventType"] == "OBJECT_FINALIZE"


def test_pubsub_push_carries_the_topic_in_the_path(events_stack: StackInfo, sink: RecordingSink) -> None:
    marker = uuid.uuid4().hex
    events_stack.pubsub_admin().publish("verify-requests", json.dumps({"run_id": marker}).encode())
    path = f"/verify/projects/{events_stack.project}/topics/verify-requests"

    def arrived(got: list[Received]) -> bool:
        return any(r.path == path and marker.encode() in base64.b64decode(r.body["message"]["data"]) for r in got)

    got = sink.wait_for(arrived)
    push = next(r for r in got if r.path == path)
    # functions-framework turns this push into a messagePublished CloudEvent with the topic as source.
    msg = parse_pubsub({"type": PUBSUB_PUBLISHED, "source": f"//pubsub.googleapis.com{path}", "data": push.body})
    assert msg.topic == "verify-requests" and marker.encode() in msg.data


def test_a_state_write_starts_no_function(events_stack: StackInfo, sink: RecordingSink) -> None:
    """Markers, history, alerts and checkpoints go to the state bucket: no event, no invocation."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(
        project=events_stack.project,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": events_stack.gcs_url},
    )
    assert events_stack.state_bucket and events_stack.state_bucket != events_stack.bucket
    state_name = f"exports/sales/orders/20250108/{uuid.uuid4().hex}/_verify/box/result-0.json"
    client.bucket(events_stack.state_bucket).blob(state_name).upload_from_string(b"{}")
    sentinel = f"other/{uuid.uuid4().hex}.txt"  # written after it: its event proves the events flowed
    _bucket(events_stack).blob(sentinel).upload_from_string(b"x")
    sink.wait_for(_for(sentinel, "/upload_box"))
    sink.wait_for(_for(sentinel, "/verify"))
    for function in ("upload_box", "verify"):  # the relay drops the state bucket's notifications
        _relay_logged(events_stack, function, state_name, "ignored OBJECT_FINALIZE (bucket")
    assert not [r for r in sink.received if isinstance(r.body, dict) and state_name in str(r.body.get("subject"))]


def _relay_logged(info: StackInfo, function: str, name: str, note: str) -> None:
    """Wait until the relay's log has its line for ``function`` and object ``name`` with ``note``."""
    relay_log = Path(info.component("relay").log)
    deadline = time.monotonic() + 60
    while True:
        whole = relay_log.read_text().split("\n")[:-1]  # the last line may still be being written
        lines = [json.loads(line) for line in whole if line.startswith("{")]
        if any(x["function"] == function and x["object"] == name and x["note"].startswith(note) for x in lines):
            return
        assert time.monotonic() < deadline, f"the relay never logged {note!r} for {function} and {name}"
        time.sleep(0.1)


def test_a_mirrored_buckets_finalize_and_delete_reach_the_delivery_functions_only(
    events_stack: StackInfo, sink: RecordingSink
) -> None:
    """buckets[] (the generated config mirrors offsite-local-files): finalize and delete events
    as Eventarc's triggers on that bucket deliver them (infra/mirror.tf), to upload_box, not verify."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    from devstack.localconfig import MIRRORED_BUCKET
    from shared.topology import GCS_DELETED

    client = storage.Client(
        project=events_stack.project,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": events_stack.gcs_url},
    )
    name = f"mirror test/{uuid.uuid4().hex}/ünïcødé.txt"
    blob = client.bucket(MIRRORED_BUCKET).blob(name)
    blob.upload_from_string(b"mirrored")
    sink.wait_for(_for(name, "/upload_box"))
    blob.delete()

    def deleted_arrived(got: list[Received]) -> bool:
        return any(
            r.path == "/upload_box" and isinstance(r.body, dict) and r.body.get("type") == GCS_DELETED
            for r in got
            if isinstance(r.body, dict) and r.body.get("subject") == f"objects/{name}"
        )

    got = sink.wait_for(deleted_arrived)
    mine = [r for r in got if isinstance(r.body, dict) and r.body.get("subject") == f"objects/{name}"]
    assert sorted(r.body["type"] for r in mine) == sorted([GCS_FINALIZED, GCS_DELETED])
    assert all(r.path == "/upload_box" for r in mine)
    deleted = next(r for r in mine if r.body["type"] == GCS_DELETED)
    assert parse_storage(deleted.body).bucket == MIRRORED_BUCKET
    assert deleted.body["source"] == f"//storage.googleapis.com/projects/_/buckets/{MIRRORED_BUCKET}"
    _relay_logged(events_stack, "verify", name, "ignored OBJECT_DELETE (bucket")
