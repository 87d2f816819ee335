"""CloudEvents (as functions-framework delivers them) → offsite's plain types.

A table of event types, not a pile of if/else (functions-framework's own style): each
supported ``type`` maps to a parser. Unsupported types and malformed payloads are
``RejectedInput`` naming what was wrong.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.errors import RejectedInput
from shared.topology import GCS_FINALIZED, GCS_TRIGGER, PUBSUB_PUBLISHED


@dataclass(frozen=True)
class PubSubMessage:
    data: bytes
    message_id: str
    publish_time: str
    topic: str | None
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StorageObject:
    bucket: str
    name: str
    generation: int
    size: int
    md5: str | None = None
    crc32c: str | None = None
    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    event_id: str | None = None


class CloudEventLike(Protocol):
    """What offsite reads of a ``cloudevents.http.CloudEvent`` (functions-framework's event)."""

    data: Any

    def get_attributes(self) -> Mapping[str, Any]: ...


Event = Mapping[str, Any] | CloudEventLike
"""A CloudEvent as delivered, or as a plain dict (saved JSON)."""


def _attributes(event: Event) -> Mapping[str, Any]:
    """CloudEvent attributes from a cloudevents.http.CloudEvent or a plain dict (saved JSON)."""
    if isinstance(event, Mapping):
        return event
    return event.get_attributes()


def _data(event: Event) -> Any:
    return event.get("data") if isinstance(event, Mapping) else event.data


def event_type(event: Any) -> str:
    return str(_attributes(event).get("type", ""))


def parse_pubsub(event: Any) -> PubSubMessage:
    """``google.cloud.pubsub.topic.v1.messagePublished`` → PubSubMessage (data base64-decoded)."""
    attrs = _attributes(event)
    payload = _data(event)
    if not isinstance(payload, Mapping) or not isinstance(payload.get("message"), Mapping):
        raise RejectedInput("pubsub event: data.message is missing")
    msg = payload["message"]
    try:
        data = base64.b64decode(msg.get("data") or "", validate=True)
    except (binascii.Error, ValueError):
        raise RejectedInput("pubsub event: message.data is not valid base64") from None
    source = str(attrs.get("source", ""))
    topic = source.rsplit("/topics/", 1)[1] if "/topics/" in source else None
    return PubSubMessage(
        data=data,
        message_id=str(msg.get("messageId") or msg.get("message_id") or attrs.get("id", "")),
        publish_time=str(msg.get("publishTime") or msg.get("publish_time") or attrs.get("time", "")),
        topic=topic,
        attributes={str(k): str(v) for k, v in (msg.get("attributes") or {}).items()},
    )


def parse_storage(event: Any) -> StorageObject:
    """``google.cloud.storage.object.v1.finalized`` → StorageObject."""
    attrs = _attributes(event)
    obj = _data(event)
    if not isinstance(obj, Mapping):
        raise RejectedInput("storage event: data is not a JSON object")
    for key in ("bucket", "name"):
        if not isinstance(obj.get(key), str) or not obj.get(key):
            raise RejectedInput(f"storage event: data.{key} is missing")
    try:
        generation = int(obj.get("generation", 0))
        size = int(obj.get("size", 0))
    except (TypeError, ValueError):
        raise RejectedInput(
            f"storage event: generation/size not integers: {obj.get('generation')!r}/{obj.get('size')!r}"
        ) from None
    return StorageObject(
        bucket=obj["bucket"],
        name=obj["name"],
        generation=generation,
        size=size,
        md5=obj.get("md5Hash"),
        crc32c=obj.get("crc32c"),
        content_type=obj.get("contentType"),
        metadata={str(k): str(v) for k, v in (obj.get("metadata") or {}).items()},
        event_id=str(attrs.get("id")) if attrs.get("id") else None,
    )


PARSERS: dict[str, Callable[[Any], PubSubMessage | StorageObject]] = {
    PUBSUB_PUBLISHED: parse_pubsub,
    GCS_FINALIZED: parse_storage,
}


def trigger_name(event: Any) -> str:
    """Which trigger delivered ``event``: the topic of a Pub/Sub event (from the CloudEvent's
    ``source``, ``//pubsub.googleapis.com/projects/P/topics/T``) or ``gcs-finalized``.

    RejectedInput for other event types, or a Pub/Sub event whose source names no topic.
    """
    kind = event_type(event)
    if kind == GCS_FINALIZED:
        return GCS_TRIGGER
    if kind != PUBSUB_PUBLISHED:
        raise RejectedInput(f"event type {kind!r} is not handled (expected one of {', '.join(PARSERS)})")
    source = str(_attributes(event).get("source", ""))
    if "/topics/" not in source:
        raise RejectedInput(f"pubsub event: source {source[:200]!r} names no topic (expected .../topics/NAME)")
    return source.rsplit("/topics/", 1)[1]


def parse(event: Any) -> PubSubMessage | StorageObject:
    """Dispatch on the CloudEvent type."""
    kind = event_type(event)
    parser = PARSERS.get(kind)
    if parser is None:
        raise RejectedInput(f"event type {kind!r} is not handled (expected one of {', '.join(PARSERS)})")
    return parser(event)
