"""The last error of an event that is being retried — so that, if it is dead-lettered, its
``failed`` result can say why.

Pub/Sub keeps a dead-lettered message's data and attributes but not why its deliveries failed.
The stage runner records each retried failure here (best effort, in the state bucket, under
``errors/{key}.json``), keyed by what survives dead-lettering: the message data of a Pub/Sub
event, the object (bucket, name, generation) of a storage event.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from shared import log

logger = log.get_logger(__name__)
PREFIX = "errors/"
MAX_ERROR_CHARS = 2000


def key_for_data(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:40]


def key_for_object(bucket: str, name: str, generation: int | str) -> str:
    return key_for_data(f"gs://{bucket}/{name}#{generation}".encode())


def key_for_event(event: Any) -> str | None:
    """The key of a CloudEvent (storage or Pub/Sub), or None when it has neither shape."""
    from shared.events import attributes, parse_pubsub, parse_storage
    from shared.topology import GCS_FINALIZED

    attrs = attributes(event)
    try:
        if attrs.get("type") == GCS_FINALIZED:
            obj = parse_storage(event)
            return key_for_object(obj.bucket, obj.name, obj.generation)
        return key_for_data(parse_pubsub(event).data)
    except Exception:  # noqa: BLE001 - a malformed event is rejected elsewhere; nothing to key
        return None


def record(state_bucket: str, key: str, stage: str, error: BaseException) -> None:
    """Remember ``error`` as the last failure of the event ``key``; never raises."""
    from shared.gcp import gcs

    body = {
        "stage": stage,
        "error": f"{error.__class__.__name__}: {error}"[:MAX_ERROR_CHARS],
        "at": dt.datetime.now(dt.UTC).isoformat(),
    }
    try:
        gcs.write(state_bucket, f"{PREFIX}{key}.json", json.dumps(body).encode(), "application/json")
    except Exception as exc:  # noqa: BLE001 - a lost note must not change how the event is retried
        logger.warning("could not record the failure for a later dead letter", error=str(exc))


def recall(state_bucket: str, key: str) -> dict[str, Any] | None:
    """What :func:`record` kept for ``key``; None when nothing was recorded."""
    from shared.gcp import gcs

    try:
        found = gcs.read_json(state_bucket, f"{PREFIX}{key}.json")
    except Exception as exc:  # noqa: BLE001 - the report goes out without it
        logger.warning("could not read the recorded failure", error=str(exc))
        return None
    return found if isinstance(found, dict) else None
