"""The verify function: which runs and destinations an event asks about (called by functions/verify).

Triggers:
- ``deliveries`` (Pub/Sub): a DeliveryReceipt → that run folder at that destination;
- GCS OBJECT_FINALIZE: only a run's ``_manifest.json`` (every other object is ignored) →
  that run folder at each of its manifest's destinations;
- ``verify-requests`` (Pub/Sub): ``{run_id}`` (every run folder of the run id),
  ``{dataset, table, date}`` or ``{export, date}`` (the latest run folder of that day),
  optionally one ``destination``; or ``{"sweep": true}`` (:mod:`shared.verify.sweep`).

Stateless: every trigger re-reads the manifest, the markers and the destination listing
(:mod:`shared.verify.flow` decides what to publish). Bad input — a malformed request or
receipt, an unknown run id, a manifest that is not valid JSON or of an unknown
schema_version — raises RejectedInput: the stage reports it as ``rejected`` and acks it. A bad
manifest reached by automatic triggers is reported once (``_verify/rejected.json``).
"""

from __future__ import annotations

import json
from typing import Any

from shared import log
from shared.config import Config
from shared.delivery.routing import load_run
from shared.errors import PermanentError, RejectedInput
from shared.events import PubSubMessage, StorageObject, event_type, parse_pubsub, parse_storage
from shared.gcp import gcs
from shared.layout import MANIFEST_NAME, RunFolder, parse_object_name
from shared.manifest import Manifest
from shared.messages import DeliveryReceipt, VerifyRequest, VerifyResult
from shared.reporting.results import report
from shared.topology import DELIVERIES, GCS_FINALIZED, VERIFY_REQUESTS
from shared.verify import markers as verify_markers
from shared.verify.flow import RunContext, Trigger, source_dict, verify_destination
from shared.verify.runs import RunRef, find_runs, folder_source, load_manifest

logger = log.get_logger(__name__)


def verify(event: Any, *, config: Config | None = None) -> None:
    """Handle one CloudEvent (see the module docstring). Raises Transient/PermanentError."""
    if config is None:
        from shared.runtime import config as runtime_config

        config = runtime_config()
    if event_type(event) == GCS_FINALIZED:
        on_object(parse_storage(event), config)
        return
    message = parse_pubsub(event)
    with log.bind(message_id=message.message_id):
        topic = message.topic or _guess_topic(message)
        if topic == DELIVERIES:
            on_receipt(DeliveryReceipt.from_json(message.data), config, message.message_id)
        elif topic == VERIFY_REQUESTS:
            on_request(VerifyRequest.from_json(message.data), config, message.message_id)
        else:
            raise RejectedInput(f"pubsub event: topic {topic!r} is not {DELIVERIES!r} or {VERIFY_REQUESTS!r}")


def _guess_topic(message: PubSubMessage) -> str:
    """A push without the topic in its source: a receipt names an object, a request does not."""
    try:
        obj = json.loads(message.data)
    except ValueError:
        return VERIFY_REQUESTS  # let VerifyRequest parsing reject it with a clear message
    return DELIVERIES if isinstance(obj, dict) and "remote_path" in obj else VERIFY_REQUESTS


# ---- triggers ------------------------------------------------------------------------------


def on_object(obj: StorageObject, config: Config) -> None:
    """A finalized object: only a run's manifest matters."""
    located = parse_object_name(obj.name, config.export_prefix, config.project)
    if obj.bucket != config.bucket or located is None or located[1] != MANIFEST_NAME:
        logger.info("not a run manifest; ignored", bucket=obj.bucket, object=obj.name)
        return
    folder = located[0]
    with log.bind(run_id=folder.run_id, table=folder.source.label):
        manifest = _manifest_once(config, folder)
        if manifest is None:
            return
        ctx = RunContext(config, folder, manifest, obj.event_id)
        _each_destination(ctx, manifest.destinations, Trigger.MANIFEST)


def on_receipt(receipt: DeliveryReceipt, config: Config, message_id: str) -> None:
    """A file was delivered: verify that run at that destination."""
    located = parse_object_name(receipt.object, config.export_prefix, config.project)
    if located is None or receipt.bucket != config.bucket:
        raise RejectedInput(
            f"delivery receipt.object: gs://{receipt.bucket}/{receipt.object} is not a run file under "
            f"gs://{config.bucket}/{config.export_prefix}/"
        )
    folder = located[0]
    with log.bind(run_id=folder.run_id, table=folder.source.label, destination=receipt.destination):
        if receipt.run_id != folder.run_id:
            raise RejectedInput(
                f"delivery receipt.run_id: {receipt.run_id!r} but the object is in run {folder.run_id!r}"
            )
        manifest = _manifest_once(config, folder)
        if manifest is None:
            logger.info("manifest not written yet; its finalize event will verify")
            return
        if receipt.destination not in manifest.destinations:
            logger.warning(
                "receipt for a destination the manifest does not list; ignored", listed=list(manifest.destinations)
            )
            return
        ctx = RunContext(config, folder, manifest, message_id)
        verify_destination(ctx, receipt.destination, Trigger.RECEIPT, receipt=receipt)


def on_request(request: VerifyRequest, config: Config, message_id: str) -> None:
    """On demand: always reports, one result per run folder and destination."""
    if request.sweep:
        from shared.verify.sweep import sweep

        sweep(config, message_id=message_id)
        return
    runs = find_runs(
        config.bucket,
        config.export_prefix,
        config.project,
        run_id=request.run_id,
        dataset=request.dataset,
        table=request.table,
        export=request.export,
        date=request.date,
    )
    if not request.run_id and runs:
        runs = runs[-1:]  # the day's latest run (a re-run supersedes an earlier one)
    if not runs:
        asked = request.to_dict()
        asked.pop("schema_version", None)
        raise RejectedInput(
            f"verify request: no run found for {asked} under gs://{config.bucket}/{config.export_prefix}/"
        )
    failures: list[PermanentError] = []
    for run in runs:
        with log.bind(run_id=run.folder.run_id, table=run.folder.source.label):
            try:
                _verify_requested(run, request, config, message_id)
            except PermanentError as exc:
                if len(runs) == 1:
                    raise
                _report_failure(exc, run.folder, request.destination, message_id, stage=Trigger.REQUEST.stage)
                failures.append(exc)
    if failures:
        logger.warning("some run folders could not be verified", failed=len(failures), runs=len(runs))


def _verify_requested(run: RunRef, request: VerifyRequest, config: Config, message_id: str) -> None:
    manifest = load_manifest(config.bucket, run.folder)
    if manifest is None:
        _report_no_manifest(run, request.destination, config, message_id)
        return
    destinations = manifest.destinations
    if request.destination:
        if request.destination not in manifest.destinations:
            raise RejectedInput(
                f"verify request.destination: {request.destination!r} is not a destination of run "
                f"{run.folder.run_id} ({run.folder.source.label}); its manifest lists {', '.join(manifest.destinations) or 'none'}"
            )
        destinations = (request.destination,)
    _each_destination(RunContext(config, run.folder, manifest, message_id), destinations, Trigger.REQUEST)


def _report_no_manifest(run: RunRef, destination: str | None, config: Config, message_id: str) -> None:
    """Asked about a run whose export has not finished: ``incomplete`` per routed destination."""
    routing = load_run(config.bucket, run.folder)
    destinations = [destination] if destination else list(routing.destinations if routing else ())
    for dest in destinations or [None]:
        report(
            VerifyResult(
                status="incomplete",
                destination=dest,
                run_id=run.folder.run_id,
                source=folder_source(run.folder),
                reason=f"export incomplete: {gcs.uri(config.bucket, run.folder.manifest_name)} is not written yet",
                stage=Trigger.REQUEST.stage,
                message_id=message_id,
                date=run.folder.date.isoformat(),
                started_at=run.started.isoformat() if run.started else None,
            )
        )


# ---- helpers -------------------------------------------------------------------------------


def _manifest_once(config: Config, folder: RunFolder) -> Manifest | None:
    """The manifest for automatic triggers; a bad one is reported as rejected once, then ignored."""
    try:
        return load_manifest(config.bucket, folder)
    except RejectedInput:
        if verify_markers.claim(config.bucket, verify_markers.rejected_name(folder.prefix), {"run_id": folder.run_id}):
            raise
        logger.info("manifest already reported as rejected; ignored")
        return None


def _each_destination(ctx: RunContext, destinations: tuple[str, ...], trigger: Trigger) -> None:
    """Verify each destination on its own: one failing does not hide the others' results."""
    transient: Exception | None = None
    for destination in destinations:
        try:
            verify_destination(ctx, destination, trigger)
        except PermanentError as exc:
            if len(destinations) == 1:
                raise
            _report_failure(exc, ctx.folder, destination, ctx.message_id, stage=trigger.stage, manifest=ctx.manifest)
        except Exception as exc:  # noqa: BLE001 - finish the others, then let the event be retried
            logger.warning(
                "verify failed for one destination; the event will be retried", destination=destination, error=str(exc)
            )
            transient = exc
    if transient is not None:
        raise transient


def _report_failure(
    exc: PermanentError,
    folder: RunFolder,
    destination: str | None,
    message_id: str | None,
    *,
    stage: str,
    manifest: Manifest | None = None,
) -> None:
    logger.error("permanent failure for one destination", destination=destination, error=str(exc))
    report(
        VerifyResult(
            status=exc.status,
            destination=destination,
            run_id=folder.run_id,
            source=source_dict(manifest) if manifest else folder_source(folder),
            reason=str(exc),
            stage=stage,
            message_id=message_id,
            date=folder.date.isoformat(),
        )
    )
