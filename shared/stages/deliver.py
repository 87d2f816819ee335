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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared import log, topology
from shared.config import Config
from shared.delivery.operation import Delivery, Stale, deliver
from shared.delivery.routing import RoutedFile, route
from shared.destinations import factory
from shared.events import parse_storage
from shared.ids import DestinationId, Stage
from shared.stages.failures import each

logger = log.get_logger(__name__)


def handler_for(stage: Stage) -> Callable[[Any, Config], None]:
    """The delivery handler of one deployed function (``upload_box``, ``transfer_sftp``)."""
    kinds = topology.function(str(stage)).serves

    def handle(event: Any, config: Config) -> None:
        deliver_event(event, config, stage=stage, kinds=kinds)

    return handle


def deliver_event(event: Any, config: Config, *, stage: Stage, kinds: frozenset[str]) -> None:
    """Deliver the finalized object of ``event`` to its run's destinations of ``kinds``."""
    obj = parse_storage(event)
    routed = route(obj, config.export_prefix)
    if routed is None:
        return
    targets = [DestinationId.parse(str(d)) for d in routed.routing.destinations]
    mine = [d for d in targets if d.kind in kinds]
    with log.bind(run_id=routed.routing.run_id, table=routed.routing.source.label, object=obj.name):
        if not mine:
            logger.info(
                "run not routed to this function's destinations; ignored", destinations=[str(d) for d in targets]
            )
            return
        each(stage, mine, lambda d: _deliver_one(routed, d, config), lambda d: _context(routed, d))


def _deliver_one(routed: RoutedFile, destination_id: DestinationId, config: Config) -> None:
    with factory.opened(destination_id, config) as destination:
        remote_path = routed.remote_path(destination.abilities.layout)
        try:
            deliver(Delivery(routed.obj, destination, remote_path, routed.routing.run_id))
        except Stale as stale:
            logger.info("stale event ignored", reason=str(stale), generation=routed.obj.generation)


def _context(routed: RoutedFile, destination_id: DestinationId) -> dict[str, Any]:
    """What a failure at this destination is reported with."""
    import dataclasses

    return {
        "destination": str(destination_id),
        "run_id": routed.routing.run_id,
        "source": dataclasses.asdict(routed.routing.source),
        "date": routed.routing.date.isoformat(),
    }
