"""upload_box and transfer_sftp: one exported data file (a GCS finalize event) → each routed
destination of the function's kinds, through the one delivery operation.

1. Only export data files of runs that route somewhere (``_run.json`` in the same GCS folder)
   are delivered; anything else is logged and ignored (:func:`shared.delivery.routing.route`).
2. Each destination the run routes to, of the kinds this function serves
   (``FunctionSpec.serves`` in shared/topology.py), is one :func:`shared.delivery.operation.deliver`
   with its own receipt. A destination that fails does not stop the others
   (:func:`shared.stages.failures.each`): permanent failures are reported, transient ones retried
   (the destinations already done find their file unchanged and skip it).
3. A stale event (the object was replaced or deleted since) delivers nothing: the live
   generation's own event does.
4. Objects of mirrored buckets (``buckets[]``) take the mirror's route and their delete events
   its delete policy (:mod:`shared.stages.mirror`, docs/mirror.md).
5. The run's ``_manifest.json`` follows the data files to each destination: tried on its own
   finalize event and after each data file, sent once every listed file is there, one receipt
   per destination (:mod:`shared.delivery.manifest_copy`). ``_manifest.delivered.json`` events
   deliver only a self-heal's rewrite, to the destination it names; its continuations resume
   the manifest copy that paused on its time budget.
6. A transfer to a resumable destination works at most ``delivery.budget_s`` per invocation,
   then continues from its checkpoint on a ``delivery-continuations`` message, which this
   same handler receives (:mod:`shared.delivery.checkpoint`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from shared import log, topology
from shared.config import Config
from shared.delivery.manifest_copy import deliver_manifest_if_ready
from shared.delivery.operation import Delivery, Stale, budget_left, deliver
from shared.delivery.routing import RoutedFile, route, routing_for
from shared.destinations import factory
from shared.errors import RejectedInput
from shared.events import StorageObject, parse_pubsub, parse_storage
from shared.gcp import gcs
from shared.ids import DestinationId, Stage
from shared.layout import DELIVERED_MANIFEST_NAME, MANIFEST_NAME, RunFolder, parse_object_name
from shared.messages import TableExport
from shared.stages.failures import each
from shared.stages.mirror import delete_mirrored, deliver_mirrored, is_mirrored
from shared.stages.runner import dispatch
from shared.topology import DELIVERY_CONTINUATIONS, GCS_DELETED_TRIGGER, GCS_FINALIZED, GCS_TRIGGER
from shared.verify.heal import heal_destination

logger = log.get_logger(__name__)


def handler_for(stage: Stage, *, budget_s: float | None = None) -> Callable[[Any, Config], None]:
    """The delivery handler of one deployed function (``upload_box``, ``transfer_sftp``): object
    finalize events and continuations of its destination kinds. ``budget_s`` overrides the
    config's ``delivery.budget_s`` (tests)."""
    kinds = topology.function(str(stage)).serves

    def on_finalized(event: Any, config: Config) -> None:
        budget = config.delivery.budget_s if budget_s is None else budget_s
        deliver_event(event, config, stage=stage, kinds=kinds, budget_s=budget)

    def on_continuation(event: Any, config: Config) -> None:
        budget = config.delivery.budget_s if budget_s is None else budget_s
        continue_delivery(event, config, stage=stage, kinds=kinds, budget_s=budget)

    def on_deleted(event: Any, config: Config) -> None:
        delete_mirrored(event, config, stage=stage, kinds=kinds)

    return dispatch(
        {GCS_TRIGGER: on_finalized, DELIVERY_CONTINUATIONS: on_continuation, GCS_DELETED_TRIGGER: on_deleted}
    )


def deliver_event(
    event: Any, config: Config, *, stage: Stage, kinds: frozenset[str], budget_s: float | None = None
) -> None:
    """Deliver the finalized object of ``event`` to its run's destinations of ``kinds``."""
    obj = parse_storage(event)
    if is_mirrored(obj, config):  # an object of a mirrored bucket (docs/mirror.md)
        deliver_mirrored(obj, config, stage=stage, kinds=kinds, budget_s=budget_s)
        return
    located = parse_object_name(obj.name, config.export_prefix)
    if located is not None and located[1] == MANIFEST_NAME:  # written: destinations already complete get it
        _deliver_manifest(obj, located[0], config, stage, kinds, budget_s)
        return
    if located is not None and located[1] == DELIVERED_MANIFEST_NAME:
        healed = heal_destination(obj.metadata)
        if healed is None:  # its first write: the trigger that wrote it delivered it
            logger.info("delivered manifest written by its own delivery; nothing to do", object=obj.name)
            return
        _deliver_manifest(obj, located[0], config, stage, kinds, budget_s, healed=healed)
        return
    routed = route(obj, config.export_prefix)
    if routed is None:
        return
    _deliver_to(routed, [d for d in routed.routing.destinations if d.kind in kinds], config, stage, budget_s)


def continue_delivery(
    event: Any, config: Config, *, stage: Stage, kinds: frozenset[str], budget_s: float | None = None
) -> None:
    """A ``delivery-continuations`` message: continue one destination's transfer of one object."""
    message = parse_pubsub(event)
    with log.bind(message_id=message.message_id):
        try:
            resource = json.loads(message.data)
            destination = DestinationId.parse(message.attributes.get("destination", ""))
        except ValueError as exc:
            raise RejectedInput(f"delivery continuation: {exc}") from None
        obj = parse_storage({"type": GCS_FINALIZED, "data": resource})
        if destination.kind not in kinds:
            logger.info("continuation for another function's destination; ignored", destination=str(destination))
            return
        if is_mirrored(obj, config):
            deliver_mirrored(obj, config, stage=stage, kinds=kinds, budget_s=budget_s, only=destination)
            return
        located = parse_object_name(obj.name, config.export_prefix)
        if located is not None and located[1] == DELIVERED_MANIFEST_NAME:  # a manifest copy that paused
            _continue_manifest(obj, located[0], destination, config, stage, budget_s)
            return
        routed = route(obj, config.export_prefix)
        if routed is None:
            return
        if destination not in routed.routing.destinations:
            raise RejectedInput(f"delivery continuation: run {routed.routing.run_id} does not route to {destination}")
        _deliver_to(routed, [destination], config, stage, budget_s)


def _continue_manifest(
    obj: StorageObject,
    folder: RunFolder,
    destination: DestinationId,
    config: Config,
    stage: Stage,
    budget_s: float | None,
) -> None:
    """Continue the manifest copy to ``destination``: the delivered manifest is sealed already, so
    the same generation resumes from its checkpoint. A heal's rewrite for this destination stays a
    heal (a receipt even when unchanged: the heal round waits for one)."""
    with log.bind(run_id=folder.run_id, table=folder.source.label, object=obj.name):
        routing = routing_for(obj, folder)
        if routing is None:
            return
        if destination not in routing.destinations:
            raise RejectedInput(f"delivery continuation: run {routing.run_id} does not route to {destination}")
        live = gcs.stat(obj.bucket, obj.name)  # the continuation carries no metadata: heal's mark is on the object
        healing = heal_destination(live.metadata if live is not None else None) == str(destination)

        copy = _manifest_copier(obj, folder, routing, config, lambda: budget_s, healing=healing)
        each(stage, [destination], copy, lambda d: _context(routing, d))


def _deliver_to(
    routed: RoutedFile, mine: list[DestinationId], config: Config, stage: Stage, budget_s: float | None
) -> None:
    obj = routed.obj
    with log.bind(run_id=routed.routing.run_id, table=routed.routing.source.label, object=obj.name):
        if not mine:
            routed_to = [str(d) for d in routed.routing.destinations]
            logger.info("run not routed to this function's destinations; ignored", destinations=routed_to)
            return
        left = budget_left(budget_s)
        each(stage, mine, lambda d: _deliver_one(routed, d, config, left()), lambda d: _context(routed.routing, d))


def _deliver_one(routed: RoutedFile, destination_id: DestinationId, config: Config, budget_s: float | None) -> None:
    left = budget_left(budget_s)  # the manifest copy gets what the data file left of it
    with factory.opened(destination_id, config) as destination:
        remote_path = routed.remote_path(destination.abilities.layout)
        delivery = Delivery(
            routed.obj, destination, remote_path, routed.routing.run_id, budget_s, config.state_bucket_name
        )
        try:
            deliver(delivery)
        except Stale as stale:
            logger.info("stale event ignored", reason=str(stale), generation=routed.obj.generation)
            return
        deliver_manifest_if_ready(
            routed.obj.bucket,
            routed.folder,
            routed.routing,
            destination,
            budget_s=left(),
            state_bucket=config.state_bucket_name,
        )


def _deliver_manifest(
    obj: StorageObject,
    folder: RunFolder,
    config: Config,
    stage: Stage,
    kinds: frozenset[str],
    budget_s: float | None,
    *,
    healed: str | None = None,
) -> None:
    """The run's manifest was written: send it to each destination of ``kinds`` that already
    holds every data file (the others get it after their last data file). ``healed``: a heal
    rewrote the delivered manifest for that one destination; only it gets the copy (and a
    receipt even when it finds the copy unchanged)."""
    with log.bind(run_id=folder.run_id, table=folder.source.label, object=obj.name):
        routing = routing_for(obj, folder)
        if routing is None:
            return
        mine = [d for d in routing.destinations if d.kind in kinds and healed in (None, str(d))]
        copy = _manifest_copier(obj, folder, routing, config, budget_left(budget_s), healing=healed is not None)
        each(stage, mine, copy, lambda d: _context(routing, d))


def _manifest_copier(
    obj: StorageObject,
    folder: RunFolder,
    routing: TableExport,
    config: Config,
    budget: Callable[[], float | None],
    *,
    healing: bool,
) -> Callable[[DestinationId], None]:
    """The manifest copy to one destination, opened for it, within ``budget()`` (asked at its start)."""

    def copy(destination_id: DestinationId) -> None:
        with factory.opened(destination_id, config) as destination:
            deliver_manifest_if_ready(
                obj.bucket,
                folder,
                routing,
                destination,
                budget_s=budget(),
                state_bucket=config.state_bucket_name,
                healing=healing,
            )

    return copy


def _context(routing: TableExport, destination_id: DestinationId) -> dict[str, Any]:
    """What a failure at this destination is reported with."""
    return {
        "destination": str(destination_id),
        "run_id": routing.run_id,
        "source": routing.source,
        "date": routing.date.isoformat(),
    }
