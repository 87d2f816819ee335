"""The one delivery operation: one GCS object → one Destination, proven and reported.

As rclone's ``operations.Copy`` is one operation over any ``Fs``, every delivery — a Box DR
copy, an SFTP partner file, and each new backend — runs these steps, and nothing here knows
which backend it talks to (it reads ``destination.abilities``):

1. **stale check**: the object must still hold the bytes the event announced
   (:func:`shared.delivery.freshness.live_object`), else :class:`Stale` — nothing delivered;
2. **unchanged check and put**: ``destination.put`` with the object's recorded SHA-1 when it
   was computed from this generation's bytes (skip without reading; ``ledger.bound_sha1``) and,
   for destinations that cannot hash server-side, the object's ledger (:mod:`shared.delivery.ledger`);
   the bytes stream through :class:`shared.gcp.reader.ObjectReader` (pinned generation,
   CRC32C-checked, prefetching) — a generation that vanishes mid-read is judged again on the next try;
3. **metadata**: the SHA-1 and the ledger entry are merged into the object's metadata; when the
   object was replaced meanwhile, these older bytes may have landed on top of the newer
   generation's copy, so the live generation is queued again and written last
   (:func:`requeue_if_replaced`): a stale generation never stays on top of a newer one;
4. **receipt**: a DeliveryReceipt on ``deliveries`` (verify compares the destination with
   the manifest on each one) — unless the put found the bytes already there and the caller
   said a repeat needs none (``Delivery.receipt_if_unchanged``: the manifest copy's repeat triggers).

A resumable destination works at most ``budget_s``: then its progress is checkpointed and a
continuation published (:mod:`shared.delivery.checkpoint`); the invocation that finishes the
file sends the receipt. Other destinations get the whole invocation.

A TransientError is retried a few times in process (a stale pooled connection, a blip), then
raised so the event is redelivered; PermanentError propagates at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from shared import log
from shared.budgeted_pass import stop_time
from shared.delivery import checkpoint
from shared.delivery.freshness import Stale, live_object, same_content
from shared.delivery.ledger import ObjectLedger, bound_sha1, record_delivery
from shared.destinations.base import Destination, Progress, PutResult, Resumable
from shared.errors import TransientError
from shared.events import StorageObject
from shared.gcp import gcs, pubsub
from shared.gcp.reader import ObjectReader
from shared.ids import DestinationId
from shared.messages import DeliveryReceipt
from shared.retry import retry_call
from shared.topology import DELIVERIES

logger = log.get_logger(__name__)
ATTEMPTS = 3
PREFETCH_BLOCKS = 4  # 1 MiB blocks read ahead of the destination's writes

__all__ = ["ATTEMPTS", "Delivery", "Stale", "budget_left", "deliver", "requeue_if_replaced"]


@dataclass(frozen=True)
class Delivery:
    """One object generation to one destination path, for one run."""

    obj: StorageObject
    destination: Destination
    remote_path: str
    run_id: str
    budget_s: float | None = None
    """Longest time one invocation transfers before it checkpoints (resumable destinations)."""
    state_bucket: str | None = None
    """Where checkpoints live (required with ``budget_s``)."""
    receipt_if_unchanged: bool = True
    """False: a put that finds the destination already holding the bytes publishes no receipt
    (a repeat trigger of the run's manifest copy, :mod:`shared.delivery.manifest_copy`)."""


def budget_left(budget_s: float | None) -> Callable[[], float | None]:
    """One invocation's ``budget_s`` shared by the destinations it delivers to one after another:
    each call answers what is left of it (None: no budget). A destination that gets nothing left
    checkpoints at once and continues in an invocation of its own, instead of starting a full
    budget of its own that the function's timeout would cut short."""
    if budget_s is None:
        return lambda: None
    ends = stop_time(None, budget_s)
    return lambda: max(0.0, ends - time.monotonic())


def deliver(delivery: Delivery) -> DeliveryReceipt | None:
    """Run the operation (module docstring). Returns the published receipt; None when the
    object was replaced while it was delivered (the new generation's event reports it).

    Raises :class:`Stale` before anything is written when the event is stale,
    TransientError (retry) or PermanentError (report) from the destination or GCS.
    """
    started = time.monotonic()
    deadline = started + delivery.budget_s if delivery.budget_s is not None else None
    live, ledger, result = retry_call(
        lambda: _put_once(delivery, deadline),
        f"delivering to {delivery.destination.id}",
        attempts=ATTEMPTS,
        initial_s=1.0,
        max_wait_s=10.0,
    )
    if result is None:
        return None  # checkpointed: a continuation carries on
    elapsed = time.monotonic() - started
    location = delivery.destination.location(delivery.remote_path)
    logger.info(
        "delivered",
        status=result.status,
        remote_path=location,
        remote_id=result.remote_id,
        size=result.size,
        sha1=result.sha1,
        duration_s=round(elapsed, 3),
        mb_per_s=round(result.size / 1e6 / elapsed, 1) if elapsed > 0 else None,
    )
    if not record_delivery(delivery.obj, result.sha1, ledger):
        if result.status != "unchanged":  # these older bytes were written: maybe on top of newer ones
            requeue_if_replaced(delivery.obj, delivery.destination.id, delivery.run_id)
        return None
    if result.status == "unchanged" and not delivery.receipt_if_unchanged:
        logger.info("already delivered; no receipt", remote_path=location)
        return None
    receipt = DeliveryReceipt(
        run_id=delivery.run_id,
        bucket=live.bucket,
        object=live.name,
        generation=delivery.obj.generation or live.generation,
        destination=str(delivery.destination.id),
        remote_path=location,
        size=result.size,
        sha1=result.sha1,
        status=result.status,
        remote_id=result.remote_id,
    )
    pubsub.publish(DELIVERIES, receipt, run_id=delivery.run_id, destination=str(delivery.destination.id))
    return receipt


def requeue_if_replaced(obj: StorageObject, destination: DestinationId, run_id: str) -> None:
    """After ``obj``'s bytes were written to ``destination``: when the object now holds other
    bytes, the newer generation's delivery may have finished first, leaving these older bytes on
    top of it. Queue the live generation again (``delivery-continuations``) so its put comes last:
    it writes the newer bytes or finds them there."""
    live = gcs.stat(obj.bucket, obj.name)
    if live is None:
        logger.warning("object deleted while it was delivered; no newer generation to queue", object=obj.name)
        return
    if not same_content(obj, live):
        checkpoint.publish_continuation(StorageObject.from_info(live), destination, run_id)
        logger.info(
            "object replaced while it was delivered; live generation queued again", live_generation=live.generation
        )


def _put_once(
    delivery: Delivery, deadline: float | None
) -> tuple[gcs.ObjectInfo, ObjectLedger | None, PutResult | None]:
    """One try: fresh facts each time (metadata and generation may have moved). The result is
    None when a resumable destination ran out of time (checkpointed, continuation published)."""
    live = live_object(delivery.obj)
    destination = delivery.destination
    ledger = ObjectLedger(destination.id, live.metadata) if destination.abilities.needs_ledger else None
    source = ObjectReader(live, prefetch=PREFETCH_BLOCKS)
    known_sha1 = bound_sha1(live)  # a sha1 not bound to these bytes is hashed again while reading
    try:
        if deadline is not None and isinstance(destination, Resumable) and destination.abilities.resumable:
            return live, ledger, _put_within(delivery, destination, source, live, known_sha1, ledger, deadline)
        result = destination.put(delivery.remote_path, source, live.size, sha1=known_sha1, ledger=ledger)
    except gcs.ObjectMissing:
        # The generation we read vanished: replaced (the next try finds it Stale) or, on
        # fake-gcs-server, given a new generation by a metadata patch (the next try reads it).
        raise TransientError(f"{source.uri} vanished while it was read; judging it again") from None
    finally:
        source.close()
    return live, ledger, result


def _put_within(
    delivery: Delivery,
    destination: Resumable,
    source: ObjectReader,
    live: gcs.ObjectInfo,
    known_sha1: str | None,
    ledger: ObjectLedger | None,
    deadline: float,
) -> PutResult | None:
    """``put_resumable`` from the last checkpoint until ``deadline``; checkpoint and continue when
    the file is not complete by then, forget the checkpoint when it is."""
    assert delivery.state_bucket, "a time budget needs a state bucket for checkpoints"
    dest_id, obj, path = delivery.destination.id, delivery.obj, delivery.remote_path
    before = checkpoint.load(delivery.state_bucket, dest_id, obj, path)
    outcome = destination.put_resumable(
        path,
        source,
        live.size,
        sha1=known_sha1,
        ledger=ledger,
        resume=before.state if before else None,
        deadline=deadline,
    )
    if isinstance(outcome, Progress):
        saved = checkpoint.save(delivery.state_bucket, dest_id, obj, path, outcome, before)
        checkpoint.publish_continuation(obj, dest_id, delivery.run_id)
        checkpoint.log_paused(saved, live.size)
        return None
    if before is not None:
        logger.info("resumed delivery complete", invocations=before.invocations + 1, bytes_sent=before.bytes_sent)
        checkpoint.clear(delivery.state_bucket, dest_id, obj, path)
    return outcome
