"""The verify function: which runs and destinations an event asks about (called by functions/verify).

Triggers:
- ``deliveries`` (Pub/Sub): a DeliveryReceipt → that run folder at that destination;
- GCS OBJECT_FINALIZE: only a run's ``_manifest.json`` (every other object is ignored) →
  that run folder at each of its manifest's destinations;
- ``verify-requests`` (Pub/Sub): ``{run_id}`` (every run folder of the run id),
  ``{dataset, table, date}`` or ``{export, date}`` (the latest run folder of that day),
  optionally one ``destination``; or ``{"sweep": true}`` (:mod:`shared.verify.sweep`, then
  retention's daily pruning, :mod:`shared.retention.scheduled`); or ``{"recheck": [run folder,
  …], "destination": D}``, the daily recheck's pairs a sweep had no time for
  (:func:`shared.verify.recheck.recheck_requested`).

Stateless: every trigger re-reads the manifest, the markers and the destination listing
(:mod:`shared.verify.flow` decides what to publish). Bad input — a malformed request or
receipt, an unknown run id, a manifest that is not valid JSON or of an unknown
schema_version — raises RejectedInput: the stage reports it as ``rejected`` and acks it. A bad
manifest reached by automatic triggers is reported once (``_verify/rejected.json``).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from shared import log
from shared.config import Config
from shared.delivery.routing import load_run
from shared.errors import RejectedInput
from shared.events import StorageObject, parse_pubsub, parse_storage
from shared.gcp import gcs
from shared.layout import MANIFEST_NAME, RunFolder, parse_object_name
from shared.manifest import Manifest
from shared.messages import DeliveryReceipt, VerifyRequest, VerifyResult
from shared.reporting.results import report
from shared.stages.dead_letters import on_dead_letter
from shared.stages.failures import each, release_if_unreported
from shared.stages.mirror import on_reconcile_event
from shared.stages.runner import dispatch
from shared.topology import DELIVERIES, GCS_TRIGGER, MIRROR_RECONCILES, VERIFY_REQUESTS, dead_letter_reports
from shared.verify import markers as verify_markers
from shared.verify.flow import RunContext, Trigger, verify_destination
from shared.verify.runs import RunRef, find_runs, load_manifest

logger = log.get_logger(__name__)


def on_manifest_event(event: Any, config: Config) -> None:
    """GCS finalize: only a run's manifest matters."""
    on_object(parse_storage(event), config)


def on_receipt_event(event: Any, config: Config) -> None:
    """``deliveries``: a DeliveryReceipt."""
    message = parse_pubsub(event)
    with log.bind(message_id=message.message_id):
        on_receipt(DeliveryReceipt.from_json(message.data), config, message.message_id)


def on_request_event(event: Any, config: Config) -> None:
    """``verify-requests``: a VerifyRequest."""
    message = parse_pubsub(event)
    with log.bind(message_id=message.message_id):
        on_request(VerifyRequest.from_json(message.data), config, message.message_id)


verify = dispatch(
    {
        DELIVERIES: on_receipt_event,
        VERIFY_REQUESTS: on_request_event,
        GCS_TRIGGER: on_manifest_event,
        MIRROR_RECONCILES: on_reconcile_event,
        **{report.topic: on_dead_letter for report in dead_letter_reports()},
    }
)
"""The verify function's handler: one route per trigger (see :func:`shared.stages.runner.dispatch`),
including every dead-letter topic (:mod:`shared.stages.dead_letters`)."""


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
    if receipt.bucket != config.bucket and config.mirror(receipt.bucket) is not None:
        logger.info("receipt of a mirrored bucket's object; its reconcile verifies", bucket=receipt.bucket)
        return
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


def _retention_pass(config: Config, started: float, message_id: str) -> None:
    """After the sweep: retention's daily pruning (shared.retention.scheduled), within the sweep's budget."""
    from shared.retention.scheduled import daily_pass

    try:
        daily_pass(config, now=dt.datetime.now(dt.UTC), started=started, message_id=message_id)
    except Exception as exc:  # noqa: BLE001 - never fail the sweep for it; the next sweep prunes
        logger.warning("retention pass failed", error=str(exc))


def on_request(request: VerifyRequest, config: Config, message_id: str) -> None:
    """On demand: always reports, one result per run folder and destination."""
    if request.recheck:
        from shared.verify.recheck import recheck_requested

        recheck_requested(config, request, now=dt.datetime.now(dt.UTC), message_id=message_id)
        return
    if request.sweep:
        from shared.verify.sweep import sweep

        started = time.monotonic()
        try:
            sweep(config, message_id=message_id)
        finally:
            _retention_pass(config, started, message_id)
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
        state_bucket=config.state_bucket_name,
    )
    if not request.run_id and runs:
        runs = runs[-1:]  # the day's latest run (a re-run supersedes an earlier one)
    if not runs:
        asked = {k: v for k, v in request.to_dict().items() if k not in ("schema_version", "sweep")}
        raise RejectedInput(
            f"verify request: no run found for {asked} under gs://{config.bucket}/{config.export_prefix}/"
        )
    each(
        Trigger.REQUEST.stage,
        runs,
        lambda run: _verify_requested(run, request, config, message_id),
        lambda run: _failure_context(run.folder, request.destination, message_id),
    )


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
    routed: list[str | None] = [destination] if destination else list(routing.destinations if routing else ())
    for dest in routed or [None]:
        report(
            VerifyResult(
                status="incomplete",
                destination=dest,
                run_id=run.folder.run_id,
                source=run.folder.source,
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
    except RejectedInput as exc:
        marker = verify_markers.rejected_name(folder.prefix)
        if verify_markers.claim(config.state_bucket_name, marker, {"run_id": folder.run_id}):
            # the runner reports it; should that fail, the claim goes, so a later trigger reports it
            release_if_unreported(exc, config.state_bucket_name, marker)
            raise
        logger.info("manifest already reported as rejected; ignored")
        return None


def _each_destination(ctx: RunContext, destinations: tuple[str, ...], trigger: Trigger) -> None:
    """Verify each destination on its own: one failing does not hide the others' results."""
    each(
        trigger.stage,
        destinations,
        lambda destination: verify_destination(ctx, destination, trigger),
        lambda destination: _failure_context(ctx.folder, destination, ctx.message_id, ctx.manifest),
    )


def _failure_context(
    folder: RunFolder, destination: str | None, message_id: str | None, manifest: Manifest | None = None
) -> dict[str, Any]:
    """What a permanent failure for one run folder (and destination) is reported with."""
    return {
        "run_id": folder.run_id,
        "table": folder.source.label,
        "destination": destination,
        "source": manifest.source if manifest else folder.source,
        "message_id": message_id,
        "date": folder.date.isoformat(),
    }
