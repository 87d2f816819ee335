"""The mirror's stage handlers (docs/mirror.md): objects of mirrored buckets through the one
delivery operation, their deletes, and the scheduled reconcile.

- finalize events and continuations of a mirrored bucket's objects reach the delivery functions
  (upload_box, transfer_sftp) like export files do; each delivers to the bucket's destinations
  of its own kinds (:func:`deliver_mirrored`). A stale event delivers nothing (the live
  generation's event does); when the object was replaced while this generation was copied, the
  live generation is queued again so the newer bytes are written last (a stale generation never
  stays on top of a newer one); when it was deleted while copied (``delete: mirror``), the copy
  just made is removed, since the delete event may have run before it existed;
- delete events (``gcs-deleted``) apply ``delete: mirror`` (:func:`delete_mirrored`);
- ``mirror-reconciles`` reaches verify (:func:`on_reconcile_event`): split by destination,
  then compare, fix, report.
"""

from __future__ import annotations

from typing import Any

from shared import log
from shared.config import Config
from shared.config.buckets import BucketMirror
from shared.delivery.operation import Delivery, Stale, budget_left, deliver
from shared.destinations import factory
from shared.errors import RejectedInput
from shared.events import StorageObject, parse_pubsub, parse_storage
from shared.gcp import gcs, pubsub
from shared.ids import DestinationId, Stage
from shared.mirror import deletes, reconcile
from shared.mirror.request import MirrorRequest
from shared.mirror.routing import (
    MirroredObject,
    mirror_destinations,
    mirror_route,
    mirror_run_id,
    mirrorable,
    reconcile_targets,
)
from shared.stages.failures import each
from shared.topology import MIRROR_RECONCILES

logger = log.get_logger(__name__)


def is_mirrored(obj: StorageObject, config: Config) -> bool:
    """Does ``obj`` belong to a mirrored bucket (not the exports bucket)?"""
    return obj.bucket != config.bucket and config.mirror(obj.bucket) is not None


def deliver_mirrored(
    obj: StorageObject,
    config: Config,
    *,
    stage: Stage,
    kinds: frozenset[str],
    budget_s: float | None = None,
    only: DestinationId | None = None,
) -> None:
    """Deliver a mirrored bucket's object to the bucket's destinations of ``kinds`` (or ``only``)."""
    mirrored = mirror_route(obj, config)
    if mirrored is None:
        return
    mine = _mine(mirrored, config, kinds, only)
    with log.bind(run_id=mirrored.run_id, bucket=obj.bucket, object=obj.name):
        left = budget_left(budget_s)
        each(stage, mine, lambda d: _deliver_one(mirrored, d, config, left()), lambda d: _context(mirrored, d))


def delete_mirrored(event: Any, config: Config, *, stage: Stage, kinds: frozenset[str]) -> None:
    """A delete event of a mirrored bucket: ``delete: mirror`` removes the copies of ``kinds``."""
    obj = parse_storage(event)
    mirrored = mirror_route(obj, config) if is_mirrored(obj, config) else None
    if mirrored is None:
        logger.info("delete of an object that is not mirrored; ignored", bucket=obj.bucket, object=obj.name)
        return
    with log.bind(run_id=mirrored.run_id, bucket=obj.bucket, object=obj.name):
        each(stage, _mine(mirrored, config, kinds, None), lambda d: _delete_one(mirrored, d, config))


def on_reconcile_event(event: Any, config: Config) -> None:
    """``mirror-reconciles``: a MirrorRequest. One for a bucket with several destinations is
    published again as one request per destination (:func:`reconcile.per_destination`); one for
    a destination (or a bucket with one) is compared, fixed and reported here."""
    message = parse_pubsub(event)
    with log.bind(message_id=message.message_id):
        request = MirrorRequest.from_json(message.data)
        with log.bind(**_caller(request)):  # a refusal of the request answers the caller's request too
            _reconcile(request, message.message_id, config)


def _reconcile(request: MirrorRequest, message_id: str, config: Config) -> None:
    mirror, targets = reconcile_targets(request, config)
    if request.destination is None and len(targets) > 1:
        pubsub.publish_all(MIRROR_RECONCILES, reconcile.per_destination(request, targets))
        logger.info("reconcile handed on, one request per destination", destinations=[str(d) for d in targets])
        return
    asked = reconcile.Asked(request.fix, message_id, reconcile.deadline_from_now(), request.request_id)
    # a failure to list the bucket is reported as the (only) destination's
    with log.bind(**_reconcile_context(mirror, request, request.destination or next(iter(targets), None))):
        objects = reconcile.selected_objects(mirror, deadline=asked.deadline)
    each(
        Stage.MIRROR_RECONCILE,
        targets,
        lambda d: reconcile.reconcile_destination(mirror, objects, d, config, asked),
        lambda d: _reconcile_context(mirror, request, d),
    )


def _caller(request: MirrorRequest) -> dict[str, str]:
    """The caller's request id (``POST /mirror``'s), for the results that answer it."""
    return {"request_id": request.request_id} if request.request_id else {}


def _reconcile_context(
    mirror: BucketMirror, request: MirrorRequest, destination: DestinationId | None
) -> dict[str, Any]:
    """What a reconcile's failure at ``destination`` is reported with (``each`` reports all but
    the last failure itself, so the caller's request_id is named here too)."""
    where = {"destination": str(destination)} if destination else {}
    return {
        **where,
        **_caller(request),
        "run_id": mirror_run_id(mirror.name),
        "source": reconcile.mirror_source(mirror),
    }


def _mine(
    mirrored: MirroredObject, config: Config, kinds: frozenset[str], only: DestinationId | None
) -> list[DestinationId]:
    targets = mirror_destinations(mirrored.mirror, config)
    if only is None:
        return [d for d in targets if d.kind in kinds]
    if only not in targets:
        raise RejectedInput(f"delivery continuation: bucket {mirrored.mirror.name!r} is not mirrored to {only}")
    return [only]


def _deliver_one(
    mirrored: MirroredObject, destination_id: DestinationId, config: Config, budget_s: float | None
) -> None:
    obj = mirrored.obj
    with factory.opened(destination_id, config) as destination:
        if not mirrorable(obj.name, destination.abilities.partial_suffix):
            return  # not for this destination (an SFTP upload's name); its reconcile lists it
        delivery = Delivery(obj, destination, mirrored.remote_path, mirrored.run_id, budget_s, config.state_bucket_name)
        try:
            deliver(delivery)
        except Stale as stale:
            logger.info("stale event ignored", reason=str(stale), generation=obj.generation)
            return
    # Replaced while copied: deliver() queued the live generation again (requeue_if_replaced).
    live = gcs.stat(obj.bucket, obj.name)
    if live is None and mirrored.mirror.delete == "mirror":
        # Deleted while copied: its delete event may have found no copy yet, so remove this one.
        logger.info("object deleted during the copy; removing the copy (delete: mirror)")
        with factory.opened(destination_id, config) as destination:
            deletes.apply_delete(mirrored, destination)


def _delete_one(mirrored: MirroredObject, destination_id: DestinationId, config: Config) -> None:
    with factory.opened(destination_id, config) as destination:
        deletes.apply_delete(mirrored, destination)


def _context(mirrored: MirroredObject, destination_id: DestinationId) -> dict[str, Any]:
    """What a failure at this destination is reported with."""
    return {
        "destination": str(destination_id),
        "run_id": mirrored.run_id,
        "source": reconcile.mirror_source(mirrored.mirror),
    }
