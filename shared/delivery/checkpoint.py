"""Deliveries that outlive one invocation: their checkpoints, and the continuation message.

A resumable destination (``Abilities.resumable``) works until the delivery's time budget, then
returns its :class:`~shared.destinations.base.Progress`. The delivery operation saves it here
and publishes a continuation on ``delivery-continuations``; the function that serves that
destination picks it up and continues from the checkpoint. So no invocation holds a transfer
longer than ``delivery.budget_s``, however slow the partner's link.

- checkpoint: JSON at ``checkpoints/{destination}/{key}.json`` in the state bucket, where the
  key is a hash of (object, generation, remote path): the backend's resume state, the bytes
  done, how many invocations it took and how many bytes were sent in all;
- continuation: a Pub/Sub message whose data is the object resource (as in a finalize event)
  and whose attributes name the destination and the run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from shared import log
from shared.destinations.base import Progress
from shared.events import StorageObject
from shared.gcp import gcs, pubsub
from shared.ids import DestinationId
from shared.topology import DELIVERY_CONTINUATIONS

PREFIX = "checkpoints/"
logger = log.get_logger(__name__)


@dataclass(frozen=True)
class Checkpoint:
    """Where one delivery (object generation → destination path) stands between invocations."""

    destination: str
    object: str
    generation: int
    remote_path: str
    state: dict[str, Any] = field(default_factory=dict)
    bytes_done: int = 0
    bytes_sent: int = 0  # over every invocation so far
    invocations: int = 0
    size: int | None = None  # the source's size, where the generation alone does not pin it (collect)


def checkpoint_name(destination: DestinationId, obj: StorageObject, remote_path: str) -> str:
    key = hashlib.sha256(f"{obj.bucket}/{obj.name}#{obj.generation}|{remote_path}".encode()).hexdigest()[:32]
    return f"{PREFIX}{str(destination).replace(':', '/')}/{key}.json"


def read(state_bucket: str, name: str) -> Checkpoint | None:
    """The checkpoint stored at ``name``; None when there is none or it cannot be read."""
    raw = gcs.read_json(state_bucket, name)
    if not isinstance(raw, dict):
        return None
    try:
        return Checkpoint(**raw)
    except TypeError:
        return None  # written by another version: start over rather than trust it


def advanced(before: Checkpoint | None, progress: Progress, **where: Any) -> Checkpoint:
    """The checkpoint after one more invocation: ``progress`` over ``before`` (the totals carried
    on); ``where`` names what is transferred (destination, object, generation, remote_path)."""
    return Checkpoint(
        **where,
        state=progress.state,
        bytes_done=progress.bytes_done,
        bytes_sent=(before.bytes_sent if before else 0) + progress.bytes_sent,
        invocations=(before.invocations if before else 0) + 1,
    )


def write(state_bucket: str, name: str, checkpoint: Checkpoint) -> None:
    gcs.write(state_bucket, name, json.dumps(asdict(checkpoint), sort_keys=True).encode(), "application/json")


def log_paused(saved: Checkpoint, size: int) -> None:
    """The log line of a transfer that used its budget and was checkpointed."""
    logger.info(
        "time budget used; checkpointed, continuing in a new invocation",
        bytes_done=saved.bytes_done,
        size=size,
        invocations=saved.invocations,
        bytes_sent=saved.bytes_sent,
    )


def load(state_bucket: str, destination: DestinationId, obj: StorageObject, remote_path: str) -> Checkpoint | None:
    """The delivery's checkpoint; None when there is none or it belongs to another generation."""
    found = read(state_bucket, checkpoint_name(destination, obj, remote_path))
    if found is None:
        return None
    return found if found.generation == obj.generation and found.remote_path == remote_path else None


def save(
    state_bucket: str,
    destination: DestinationId,
    obj: StorageObject,
    remote_path: str,
    progress: Progress,
    before: Checkpoint | None,
) -> Checkpoint:
    """Record ``progress`` (replacing the previous checkpoint) and return it."""
    checkpoint = advanced(
        before,
        progress,
        destination=str(destination),
        object=obj.name,
        generation=obj.generation,
        remote_path=remote_path,
    )
    write(state_bucket, checkpoint_name(destination, obj, remote_path), checkpoint)
    return checkpoint


def clear(state_bucket: str, destination: DestinationId, obj: StorageObject, remote_path: str) -> None:
    gcs.delete(state_bucket, checkpoint_name(destination, obj, remote_path))


def publish_continuation(obj: StorageObject, destination: DestinationId, run_id: str) -> str:
    """Ask the function serving ``destination`` to continue delivering ``obj``."""
    resource = {
        "bucket": obj.bucket,
        "name": obj.name,
        "generation": str(obj.generation),
        "size": str(obj.size),
        "md5Hash": obj.md5,
        "crc32c": obj.crc32c,
    }
    data = json.dumps({k: v for k, v in resource.items() if v is not None}, sort_keys=True).encode()
    return pubsub.publish(DELIVERY_CONTINUATIONS, data, destination=str(destination), run_id=run_id)
