from __future__ import annotations

import json
from pathlib import Path

import pytest
from cloudevents.http import CloudEvent

from shared.errors import RejectedInput
from shared.events import PubSubMessage, StorageObject, parse, parse_pubsub, parse_storage, trigger_name

DATA = Path(__file__).resolve().parents[1] / "data"


def load(name: str) -> dict:
    return json.loads((DATA / name).read_text())


def as_cloudevent(raw: dict) -> CloudEvent:
    attrs = {k: v for k, v in raw.items() if k != "data"}
    return CloudEvent(attrs, raw["data"])


def test_pubsub_event_from_saved_json() -> None:
    msg = parse(as_cloudevent(load("pubsub_export_request.json")))
    assert isinstance(msg, PubSubMessage)
    assert json.loads(msg.data) == {"dataset": "sales", "tables": "orders,customers"}
    assert msg.message_id == "11234567890123456"
    assert msg.publish_time == "2025-01-08T02:00:00.123Z"
    assert msg.topic == "export-requests"
    assert msg.attributes == {"origin": "cloud-scheduler"}


def test_storage_event_from_saved_json() -> None:
    obj = parse(as_cloudevent(load("storage_finalized.json")))
    assert isinstance(obj, StorageObject)
    assert obj.bucket == "offsite-exports"
    assert obj.name.endswith("orders_20250108-000000000000.parquet")
    assert obj.generation == 1736301672331000 and obj.size == 4194304
    assert obj.md5 == "XrY7u+Ae7tCTyyK7j1rNww==" and obj.crc32c == "yZRlqg=="
    assert obj.metadata == {"offsite-run": "r0123456789ab"}
    assert obj.event_id == "8412934629871243"


def test_plain_dict_events_parse_too() -> None:
    assert parse_storage(load("storage_finalized.json")).size == 4194304


def test_unknown_event_type_is_rejected() -> None:
    raw = load("storage_finalized.json")
    raw["type"] = "google.cloud.storage.object.v1.archived"
    with pytest.raises(RejectedInput, match=r"event type 'google.cloud.storage.object.v1.archived' is not handled"):
        parse(raw)


def test_a_delete_event_parses_as_the_object_and_names_its_trigger() -> None:
    raw = load("storage_finalized.json")
    raw["type"] = "google.cloud.storage.object.v1.deleted"
    assert parse(raw) == parse_storage(raw)
    assert trigger_name(raw) == "gcs-deleted"


def test_bad_base64_is_rejected() -> None:
    raw = load("pubsub_export_request.json")
    raw["data"]["message"]["data"] = "!!not base64!!"
    with pytest.raises(RejectedInput, match="not valid base64"):
        parse_pubsub(raw)


def test_storage_event_without_name_is_rejected() -> None:
    raw = load("storage_finalized.json")
    del raw["data"]["name"]
    with pytest.raises(RejectedInput, match=r"data\.name is missing"):
        parse_storage(raw)
