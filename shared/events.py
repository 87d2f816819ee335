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
from typing import TYPE_CHECKING, Any, Protocol

from shared.errors import RejectedInput
from shared.topology import (
    AUDIT_LOG_WRITTEN,
    BIGQUERY_SERVICE,
    BQ_JOB_TRIGGER,
    GCS_DELETED,
    GCS_DELETED_TRIGGER,
    GCS_FINALIZED,
    GCS_TRIGGER,
    PUBSUB_PUBLISHED,
)

if TYPE_CHECKING:
    from shared.gcp.gcs import ObjectInfo


# The publish time of the message a replay republishes (`offsite dlq replay`): what a request
# without a date of its own is dated by, so a replay works for the day it was sent on.
FIRST_PUBLISHED_ATTR = "offsite-first-published"


@dataclass(frozen=True)
class PubSubMessage:
    data: bytes
    message_id: str
    publish_time: str
    topic: str | None
    attributes: dict[str, str] = field(default_factory=dict)

    @property
    def first_published(self) -> str:
        """When the request was first published: a replay's original time, else this message's."""
        return self.attributes.get(FIRST_PUBLISHED_ATTR) or self.publish_time


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

    @classmethod
    def from_info(cls, info: ObjectInfo) -> StorageObject:
        """The generation GCS describes in ``info`` (a stat or listing), not from an event."""
        return cls(
            bucket=info.bucket,
            name=info.name,
            generation=info.generation,
            size=info.size,
            md5=info.md5,
            crc32c=info.crc32c,
            content_type=info.content_type,
            metadata=dict(info.metadata),
        )


@dataclass(frozen=True)
class BigQueryJobEvent:
    """A BigQuery job's audit-log entry (``google.cloud.audit.log.v1.written``): which job, where, and
    the state the entry reports (``jobChange.after``; None when it names none). The job itself is
    the truth: handlers read it from BigQuery, never act on the entry's state alone."""

    project: str
    job_id: str
    location: str | None
    state: str | None
    event_id: str | None = None


class CloudEventLike(Protocol):
    """What offsite reads of a ``cloudevents.http.CloudEvent`` (functions-framework's event)."""

    data: Any

    def get_attributes(self) -> Mapping[str, Any]: ...


Event = Mapping[str, Any] | CloudEventLike
"""A CloudEvent as delivered, or as a plain dict (saved JSON)."""


def attributes(event: Event) -> Mapping[str, Any]:
    """CloudEvent attributes from a cloudevents.http.CloudEvent or a plain dict (saved JSON)."""
    if isinstance(event, Mapping):
        return event
    return event.get_attributes()


def _data(event: Event) -> Any:
    return event.get("data") if isinstance(event, Mapping) else event.data


def event_type(event: Any) -> str:
    return str(attributes(event).get("type", ""))


def parse_pubsub(event: Any) -> PubSubMessage:
    """``google.cloud.pubsub.topic.v1.messagePublished`` → PubSubMessage (data base64-decoded)."""
    attrs = attributes(event)
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
    """``google.cloud.storage.object.v1.finalized`` (or ``.deleted``) → StorageObject."""
    attrs = attributes(event)
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


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def parse_bigquery_job(event: Any) -> BigQueryJobEvent:
    """``google.cloud.audit.log.v1.written`` of a BigQuery job → BigQueryJobEvent.

    The job comes from ``protoPayload.resourceName`` (``projects/P/jobs/ID``, also the event's
    ``resourcename`` attribute); the location from ``metadata.jobChange.job.jobName``'s
    ``…/locations/L/jobs/ID`` form or ``resource.labels.location``; the state from
    ``metadata.jobChange.after`` (BigQueryAuditMetadata).
    """
    attrs = attributes(event)
    entry = _data(event)
    if not isinstance(entry, Mapping) or not isinstance(entry.get("protoPayload"), Mapping):
        raise RejectedInput("audit log event: data.protoPayload is missing")
    payload = entry["protoPayload"]
    if payload.get("serviceName") != BIGQUERY_SERVICE:
        raise RejectedInput(f"audit log event: serviceName {payload.get('serviceName')!r} is not BigQuery")
    resource_name = str(payload.get("resourceName") or attrs.get("resourcename") or "")
    parts = resource_name.split("/")
    if len(parts) != 4 or parts[0] != "projects" or parts[2] != "jobs" or not parts[1] or not parts[3]:
        raise RejectedInput(f"audit log event: resourceName {resource_name[:200]!r} is not projects/P/jobs/ID")
    metadata = _mapping(payload.get("metadata"))
    change = _mapping(metadata.get("jobChange"))
    job = _mapping(change.get("job"))
    location = None
    job_name = str(job.get("jobName") or "")
    if "/locations/" in job_name:
        location = job_name.split("/locations/", 1)[1].split("/", 1)[0] or None
    labels = _mapping(_mapping(entry.get("resource")).get("labels"))
    if location is None and labels.get("location"):
        location = str(labels["location"])
    state = change.get("after") or _mapping(job.get("jobStatus")).get("jobState")
    return BigQueryJobEvent(
        project=parts[1],
        job_id=parts[3],
        location=location,
        state=str(state) if state else None,
        event_id=str(attrs.get("id")) if attrs.get("id") else None,
    )


PARSERS: dict[str, Callable[[Any], PubSubMessage | StorageObject | BigQueryJobEvent]] = {
    PUBSUB_PUBLISHED: parse_pubsub,
    GCS_FINALIZED: parse_storage,
    GCS_DELETED: parse_storage,
    AUDIT_LOG_WRITTEN: parse_bigquery_job,
}


def trigger_name(event: Any) -> str:
    """Which trigger delivered ``event``: the topic of a Pub/Sub event (from the CloudEvent's
    ``source``, ``//pubsub.googleapis.com/projects/P/topics/T``), ``gcs-finalized``, ``gcs-deleted``, or
    ``bigquery-job-completed`` (a BigQuery audit-log entry).

    RejectedInput for other event types, or a Pub/Sub event whose source names no topic.
    """
    kind = event_type(event)
    if kind == GCS_FINALIZED:
        return GCS_TRIGGER
    if kind == GCS_DELETED:
        return GCS_DELETED_TRIGGER
    if kind == AUDIT_LOG_WRITTEN:
        return BQ_JOB_TRIGGER
    if kind != PUBSUB_PUBLISHED:
        raise RejectedInput(f"event type {kind!r} is not handled (expected one of {', '.join(PARSERS)})")
    source = str(attributes(event).get("source", ""))
    if "/topics/" not in source:
        raise RejectedInput(f"pubsub event: source {source[:200]!r} names no topic (expected .../topics/NAME)")
    return source.rsplit("/topics/", 1)[1]


def parse(event: Any) -> PubSubMessage | StorageObject | BigQueryJobEvent:
    """Dispatch on the CloudEvent type."""
    kind = event_type(event)
    parser = PARSERS.get(kind)
    if parser is None:
        raise RejectedInput(f"event type {kind!r} is not handled (expected one of {', '.join(PARSERS)})")
    return parser(event)
