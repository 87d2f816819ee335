"""CloudEvents as Eventarc and Pub/Sub push deliver them to a function, for tests that call a
stage's handler directly (tests/verify, tests/mirror)."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from typing import Any

from shared.gcp import gcs
from shared.topology import GCS_FINALIZED, PUBSUB_PUBLISHED


def storage_event(info: gcs.ObjectInfo, event_type: str = GCS_FINALIZED) -> dict[str, Any]:
    """The object event of ``info`` (finalized by default), with the fields the handlers read."""
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4().int)[:16],
        "source": f"//storage.googleapis.com/projects/_/buckets/{info.bucket}",
        "type": event_type,
        "subject": f"objects/{info.name}",
        "time": dt.datetime.now(dt.UTC).isoformat(),
        "data": {
            "kind": "storage#object",
            "bucket": info.bucket,
            "name": info.name,
            "generation": str(info.generation),
            "metageneration": "1",
            "size": str(info.size),
            "md5Hash": info.md5,
            "crc32c": info.crc32c,
            "metadata": info.metadata,
        },
    }


def pubsub_event(
    project: str,
    topic: str,
    data: bytes | str,
    attributes: dict[str, str] | None = None,
    *,
    subscriber: str,
    message_id: str | None = None,
) -> dict[str, Any]:
    """A message on ``topic`` as the push subscription ``{subscriber}-{topic}`` delivers it
    (``message_id``: the id Pub/Sub gave it, for a message pulled from the emulator)."""
    raw = data.encode() if isinstance(data, str) else data
    message_id = message_id or str(uuid.uuid4().int)[:16]
    now = dt.datetime.now(dt.UTC).isoformat()
    return {
        "specversion": "1.0",
        "id": message_id,
        "source": f"//pubsub.googleapis.com/projects/{project}/topics/{topic}",
        "type": PUBSUB_PUBLISHED,
        "datacontenttype": "application/json",
        "time": now,
        "data": {
            "message": {
                "data": base64.b64encode(raw).decode(),
                "messageId": message_id,
                "publishTime": now,
                "attributes": attributes or {},
            },
            "subscription": f"projects/{project}/subscriptions/{subscriber}-{topic}",
        },
    }
