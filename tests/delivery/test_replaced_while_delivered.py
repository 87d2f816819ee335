"""An object replaced after its older generation was read but before that copy was written: the
older bytes may land on top of the newer generation's copy, whose delivery already finished.
The delivery operation then queues the live generation again, so the newer bytes end on top."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
import uuid
from typing import Any

from shared.delivery.operation import Delivery, deliver
from shared.destinations.base import PutResult
from shared.destinations.memory import MemoryDestination
from shared.events import parse_storage
from shared.gcp import clients, gcs
from shared.topology import DELIVERY_CONTINUATIONS, GCS_FINALIZED
from tests.sftp import delivery_kit
from tests.sftp.delivery_kit import finalize_event, shard, write_run

stack, config, receipts = delivery_kit.stack, delivery_kit.config, delivery_kit.receipts


class HeldFirstWrite(MemoryDestination):
    """A destination whose first put reads its source, then waits before storing it (a partner's
    slow commit or rename), so a newer generation's delivery can finish in between."""

    def __init__(self) -> None:
        super().__init__()
        self.read_done, self.go = threading.Event(), threading.Event()
        self.first = True

    def put(self, path: str, source: Any, size: int, *, sha1: str | None = None, ledger: Any = None) -> PutResult:
        if not self.first:
            return super().put(path, source, size, sha1=sha1, ledger=ledger)
        self.first = False
        data = source.read(size + 1)
        self.read_done.set()
        self.go.wait(30)
        return super().put(path, io.BytesIO(data), size, sha1=None, ledger=ledger)


def test_an_older_generation_written_last_is_overwritten_by_the_live_one(stack, config, receipts) -> None:  # type: ignore[no-untyped-def]
    name = shard("orders")
    old, new = b"A" * 5000, b"B" * 6000
    run, resources = write_run(config, ("memory",), {name: old})
    admin = stack.pubsub_admin()
    subscription = f"continuations-{uuid.uuid4().hex[:8]}"
    admin.create_subscription(subscription, DELIVERY_CONTINUATIONS)
    destination, path = HeldFirstWrite(), f"x/{name}"
    older = threading.Thread(
        target=deliver, args=(Delivery(parse_storage(finalize_event(resources[name])), destination, path, run.run_id),)
    )
    older.start()
    assert destination.read_done.wait(30)
    gcs.write(config.bucket, run.prefix + name, new)  # a retried export replaces the file meanwhile
    blob = clients.storage_client().bucket(config.bucket).get_blob(run.prefix + name)
    newer = parse_storage(finalize_event(dict(blob._properties)))
    assert deliver(Delivery(newer, destination, path, run.run_id)) is not None  # its event: delivered at once
    destination.go.set()
    older.join(30)
    assert destination.stat(path).sha1 == hashlib.sha1(old).hexdigest()  # the older bytes ended on top

    queued = [m for m in admin.pull(subscription, 10) if m.get("attributes", {}).get("run_id") == run.run_id]
    assert len(queued) == 1, "the live generation was not queued again"
    again = parse_storage({"type": GCS_FINALIZED, "data": json.loads(base64.b64decode(queued[0]["data"]))})
    live = gcs.stat(config.bucket, run.prefix + name, missing_ok=False)
    assert (again.generation, queued[0]["attributes"]["destination"]) == (live.generation, "memory")  # type: ignore[union-attr]
    receipt = deliver(Delivery(again, destination, path, run.run_id))  # what the continuation runs
    assert destination.stat(path).sha1 == hashlib.sha1(new).hexdigest()
    assert receipt is not None and receipt.sha1 == hashlib.sha1(new).hexdigest()
