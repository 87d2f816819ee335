"""Dead-lettered messages become ``failed`` results: verify's route for every dead-letter topic.

A message that failed ``pubsub.max_delivery_attempts`` times lands on its subscription's
dead-letter topic (shared.topology). A report subscription on each of those topics
(``<dlq>-report``) pushes it here, and it is published as a ``failed`` result — the stage, the
run, the table and destination where they can be read from the message, and the last error the
stage runner recorded (:mod:`shared.reporting.last_errors`) — so it is alerted and shows in
``offsite status`` within a push, not when someone looks at the DLQ. The message itself stays
on the DLQ's pull subscription for ``offsite dlq list|replay``. Each result is reported once (a
claim per result, ``dead-letters/<message key>/<result>.json`` in the state bucket): Pub/Sub may
deliver the same dead letter twice. A result whose publishing fails releases its claim and the
error is raised, so the redelivery reports it and the ones not reported yet.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, TypedDict

from shared import log, topology
from shared.collect.messages import CollectFile, CollectRequest
from shared.collect.runs import record_listing_failure
from shared.collect.runs import source as collect_source
from shared.config import Config
from shared.delivery.routing import load_run
from shared.errors import RejectedInput
from shared.events import PubSubMessage, parse_pubsub, parse_storage
from shared.ids import DestinationId, Stage, Status
from shared.ingest.request import IngestRequest
from shared.layout import MANIFEST_NAME, is_data_file, parse_object_name
from shared.messages import DeliveryReceipt, ExportRequest, Source, TableExport, VerifyRequest, VerifyResult
from shared.mirror.request import MirrorRequest
from shared.mirror.routing import bucket_source, mirror_destinations, mirror_run_id, reconcile_targets
from shared.reporting import last_errors
from shared.reporting.results import report
from shared.restore.drill_records import DrillRequest, drill_of, source_of
from shared.topology import DELIVERY_CONTINUATIONS, GCS_FINALIZED, Subscription
from shared.verify import markers

logger = log.get_logger(__name__)
SOURCE_SUBSCRIPTION = "CloudPubSubDeadLetterSourceSubscription"
DELIVERY_COUNT = "CloudPubSubDeadLetterSourceDeliveryCount"
CLAIMS = "dead-letters/"


def on_dead_letter(event: Any, config: Config) -> None:
    """One dead-lettered message → its ``failed`` result(s), once."""
    message = parse_pubsub(event)
    source = topology.subscription_named(message.attributes.get(SOURCE_SUBSCRIPTION, "")) or _fed_by(message.topic)
    with log.bind(message_id=message.message_id, dead_letter_of=source.name if source else None):
        key = _key(message, source)
        results = failed_results(message, source, config, key)
        for result in results:
            _report_once(result, f"{CLAIMS}{key}/{_concern_id(result)}.json", config)
        if source is not None:
            _settle(message, source.trigger.topic, config, results[0].reason or "dead-lettered")
        logger.warning("dead-lettered message reported as failed", subscription=source.name if source else None)


def _report_once(result: VerifyResult, claim: str, config: Config) -> None:
    """Report ``result`` unless its claim exists. A report that fails releases its claim before
    the error is raised, so the redelivery reports it (and the results not reported yet)."""
    if not markers.claim(config.state_bucket_name, claim, {"message_id": result.message_id}):
        logger.info("dead letter already reported", run_id=result.run_id, destination=str(result.destination))
        return
    try:
        report(result, config=config)
    except Exception:
        try:
            markers.release(config.state_bucket_name, claim)
        except Exception as exc:  # noqa: BLE001 - the report's error is the one to retry on
            logger.error("could not release the dead letter's claim; it stays unreported", error=str(exc), claim=claim)
        raise


def _concern_id(result: VerifyResult) -> str:
    """Names one result of a dead letter: a claim per result, so one published before a failed
    one is not published again by the redelivery."""
    what = [result.run_id, result.source.label if result.source else None, result.destination, result.date]
    return hashlib.sha1(json.dumps([str(w) if w else None for w in what]).encode()).hexdigest()[:16]


def failed_results(message: PubSubMessage, source: Subscription | None, config: Config, key: str) -> list[VerifyResult]:
    """The results a dead letter reports: one per run, table and destination it concerns (one at least)."""
    stage = Stage(source.function) if source else None
    attempts = message.attributes.get(DELIVERY_COUNT, "?")
    recorded = last_errors.recall(config.state_bucket_name, key) or {}
    reason = (
        f"dead-lettered after {attempts} delivery attempts on {source.name if source else 'an unknown subscription'}: "
        + str(recorded.get("error") or "the last error was not recorded")
    )
    concerns = _what_it_was(message, source, config) or [Concern()]
    failed = {"status": Status.FAILED, "stage": stage, "reason": reason, "message_id": message.message_id}
    return [VerifyResult.model_validate({**failed, **concern}) for concern in concerns]


class Concern(TypedDict, total=False):
    """What a dead letter was about, as far as its payload tells (the result's fields)."""

    run_id: str | None
    source: Source | None
    destination: DestinationId | None
    date: str | None
    request_id: str | None


def _concern(run_id: str | None, source: Source | None, destination: DestinationId | None, day: Any) -> Concern:
    return Concern(run_id=run_id, source=source, destination=destination, date=day.isoformat() if day else None)


def _what_it_was(message: PubSubMessage, source: Subscription | None, config: Config) -> list[Concern]:
    """(run, source, destination, date) of the dead message, as far as its payload tells."""
    try:
        if source is None:
            return []
        if source.trigger.kind == "gcs" or source.trigger.topic == DELIVERY_CONTINUATIONS:
            return _object_concerns(message, source, config)
        topic = source.trigger.topic
        if topic == topology.TABLE_EXPORTS:
            task = TableExport.from_json(message.data)
            return [_concern(task.run_id, task.source, d, task.date) for d in task.destinations or [None]]
        if topic == topology.EXPORT_REQUESTS:
            return _request_concerns(ExportRequest.from_json(message.data), config)
        if topic == topology.DELIVERIES:
            receipt = DeliveryReceipt.from_json(message.data)
            return [_concern(receipt.run_id, None, receipt.destination, None)]
        if topic == topology.VERIFY_REQUESTS:
            ask = VerifyRequest.from_json(message.data)
            return [_concern(ask.run_id, None, ask.destination, ask.date)]
        if topic == topology.MIRROR_RECONCILES:
            return _reconcile_concerns(MirrorRequest.from_json(message.data), config)
        if topic == topology.COLLECT_REQUESTS:  # a scheduled request has no run id: the job only
            asked = CollectRequest.from_json(message.data)
            return [_concern(asked.run_id, collect_source(asked.collect), None, None)]
        if topic == topology.COLLECT_FILES:
            file = CollectFile.from_json(message.data)
            return [_concern(file.run_id, collect_source(file.collect), None, None)]
        if topic == topology.INGEST_REQUESTS:
            return _ingest_concerns(IngestRequest.from_json(message.data), config)
        if topic == topology.RESTORE_DRILLS:
            return _drill_concerns(DrillRequest.from_json(message.data), config)
    except Exception as exc:  # noqa: BLE001 - an unreadable dead letter is still reported, with less detail
        logger.warning("could not read the dead-lettered message", error=str(exc))
    return []


def _reconcile_concerns(request: MirrorRequest, config: Config) -> list[Concern]:
    """One per destination the reconcile was for (each has no result of it now), answering the
    caller's request_id; a bucket no longer mirrored names the bucket only."""
    try:
        _, targets = reconcile_targets(request, config)
    except RejectedInput:
        targets = ()
    run_id, source = mirror_run_id(request.bucket), bucket_source(request.bucket)
    return [
        Concern(**_concern(run_id, source, d, None), request_id=request.request_id)
        for d in targets or [request.destination]
    ]


def _ingest_concerns(req: IngestRequest, config: Config) -> list[Concern]:
    """One per requested table (the BigQuery table it writes); without tables, the run only."""
    dataset = config.ingest.dataset if config.ingest else None
    tables: list[Source | None] = [
        Source(mode="table", project=config.project, dataset=dataset, table=t) for t in req.tables or () if dataset
    ]
    return [_concern(req.run_id, table, None, None) for table in tables or [None]]


def _drill_concerns(request: DrillRequest, config: Config) -> list[Concern]:
    """The table a drill message was restoring, its first pick (the rest are settled with it, see
    :func:`_settle`), at the drill's destination; a start message names no table yet."""
    if not request.picks:
        return []
    first = request.picks[0]
    table = Source(mode="table", project=config.project, dataset=request.dataset, table=first.table)
    try:
        where: DestinationId | None = source_of(config, *drill_of(config, request.dataset))
    except (RejectedInput, ValueError):  # the drill left the config since
        where = None
    return [_concern(first.run_id, table, where, None)]


def _settle(message: PubSubMessage, topic: str | None, config: Config, reason: str) -> None:
    """What a dead letter leaves open, closed: a collect file becomes its outcome, so its run
    completes (shared/collect/copy.py); a collect request is the job's last run in its freshness
    record; a restore drill's tables not reported yet become restore_failed, so the drill ends
    (shared/restore/drill.py)."""
    from shared.collect.copy import settle_dead_letter

    try:
        if topic == topology.COLLECT_FILES:
            settle_dead_letter(config, CollectFile.from_json(message.data), reason)
        elif topic == topology.COLLECT_REQUESTS:
            asked = CollectRequest.from_json(message.data)
            record_listing_failure(config, asked.collect, asked.run_id, Status.FAILED, reason)
        elif topic == topology.RESTORE_DRILLS:
            from shared.restore.drill import settle_dead_letter as settle_drill

            settle_drill(config, DrillRequest.from_json(message.data), reason)
    except (RejectedInput, ValueError):  # unreadable, or no longer in the config
        return  # nothing to close: reported above with what could be read


def _request_concerns(req: ExportRequest, config: Config) -> list[Concern]:
    """One per requested table, or the query; a dataset without tables names the run only."""
    if req.export:
        return [_concern(req.run_id, Source(mode="query", project=config.project, export=req.export), None, req.date)]
    sources: list[Source | None] = [
        Source(mode="table", project=config.project, dataset=req.dataset, table=t) for t in req.tables or ()
    ]
    return [_concern(req.run_id, src, None, req.date) for src in sources or [None]]


def _object_concerns(message: PubSubMessage, source: Subscription, config: Config) -> list[Concern]:
    obj = parse_storage({"type": GCS_FINALIZED, "data": json.loads(message.data)})
    kinds = topology.function(source.function).serves
    named = message.attributes.get("destination")
    mirror = config.mirror(obj.bucket) if obj.bucket != config.bucket else None
    if mirror is not None:  # an object of a mirrored bucket (docs/mirror.md)
        mine: list[DestinationId | None] = [
            d for d in mirror_destinations(mirror, config) if (d.kind in kinds if not named else str(d) == named)
        ]
        return [_concern(mirror_run_id(mirror.name), bucket_source(mirror.name), d, None) for d in mine or [None]]
    located = parse_object_name(obj.name, config.export_prefix)
    # A data file, and the manifest too (the uploaders deliver its copy, verify compares on it);
    # the stages ignore the run folder's other files. Without _run.json the path names the run.
    if located is None or not (is_data_file(located[1]) or located[1] == MANIFEST_NAME):
        return []
    folder, _ = located
    routing = load_run(obj.bucket, folder)
    if routing is None:
        return [_concern(folder.run_id, folder.source, None, folder.date)]
    targets: list[DestinationId | None] = [
        d for d in routing.destinations if (d.kind in kinds if not named else str(d) == named)
    ]
    return [_concern(routing.run_id, routing.source, d, routing.date) for d in targets or [None]]


def _fed_by(dead_letter_topic: str | None) -> Subscription | None:
    """The subscription whose dead-letter topic this is. In the cloud an Eventarc trigger's dead
    letters name Eventarc's own subscription (``eventarc-REGION-TRIGGER-sub-N``), not ours; the
    functions' own GCS triggers and the mirror's (infra/mirror.tf) share the function's GCS
    dead-letter topic, which names the subscription."""
    if not dead_letter_topic:
        return None
    return next((s for s in topology.subscriptions() if s.dead_letter_topic == dead_letter_topic), None)


def _key(message: PubSubMessage, source: Subscription | None) -> str:
    """The key the runner recorded the last error under (see shared.reporting.last_errors)."""
    if source is not None and source.trigger.kind == "gcs":
        try:
            obj = json.loads(message.data)
            return last_errors.key_for_object(obj["bucket"], obj["name"], obj.get("generation", 0))
        except (ValueError, KeyError, TypeError):
            pass
    return last_errors.key_for_data(message.data)
