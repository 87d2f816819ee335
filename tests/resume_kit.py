"""A delivery longer than its time budget, driven by hand: what tests/sftp/test_resume.py and
tests/drive/test_resume_pipeline.py share.

The stage's handler runs with a budget of 0 s, so each invocation sends one chunk and stops;
it checkpoints in GCS and publishes on ``delivery-continuations``, which :func:`deliver_in_steps`
feeds back to the same handler, as the push subscription does, until the run's receipt arrives.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devstack.state import StackInfo
from shared.config import Config
from shared.delivery import checkpoint
from shared.delivery.checkpoint import Checkpoint
from shared.events import parse_storage
from shared.ids import DestinationId, Stage
from shared.layout import RunFolder
from shared.messages import DeliveryReceipt
from shared.stages.deliver import handler_for
from shared.topology import DELIVERY_CONTINUATIONS, PUBSUB_PUBLISHED
from tests.sftp.delivery_kit import DAY, finalize_event, shard, write_run


def continuation_event(stack: StackInfo, message: dict[str, Any]) -> dict[str, Any]:
    """What the push subscription on delivery-continuations delivers to the function."""
    return {
        "specversion": "1.0",
        "id": message["messageId"],
        "source": f"//pubsub.googleapis.com/projects/{stack.project}/topics/{DELIVERY_CONTINUATIONS}",
        "type": PUBSUB_PUBLISHED,
        "data": {
            "message": {
                "data": message["data"],
                "messageId": message["messageId"],
                "attributes": message.get("attributes", {}),
            }
        },
    }


@dataclass(frozen=True)
class BigFile:
    """One random file of ``size`` bytes in a new run folder (sales.orders of DAY) routed to ``destination``."""

    run: RunFolder
    destination: DestinationId
    data: bytes
    finalize: dict[str, Any]  # its finalize event
    remote: str  # its path at the destination

    @classmethod
    def written(cls, config: Config, destination: DestinationId, size: int) -> BigFile:
        name, data = shard("orders"), os.urandom(size)
        run, resources = write_run(config, (str(destination),), {name: data})
        remote = f"sales/orders/{DAY:%Y%m%d}/{run.run_id}/{name}"
        return cls(run, destination, data, finalize_event(resources[name]), remote)


def deliver_in_steps(
    stack: StackInfo,
    config: Config,
    receipts: Callable[[], list[DeliveryReceipt]],
    stage: Stage,
    file: BigFile,
    between: Callable[[Checkpoint], None],
) -> tuple[int, Checkpoint | None]:
    """Deliver ``file`` with a 0 s budget, feeding back each continuation (exactly one per
    invocation) until its run's receipt arrives; ``between`` checks each checkpoint. Returns
    (invocations, the last checkpoint); asserts the checkpoint is then forgotten and nothing is
    left to continue."""
    admin = stack.pubsub_admin()
    subscription = f"continuations-{uuid.uuid4().hex[:8]}"
    admin.create_subscription(subscription, DELIVERY_CONTINUATIONS)
    handler = handler_for(stage, budget_s=0.0)
    obj, run_id = parse_storage(file.finalize), file.run.run_id
    handler(file.finalize, config)
    invocations, last = 1, None
    while not [r for r in receipts() if r.run_id == run_id]:
        assert invocations < 50, "the delivery made no progress"
        last = checkpoint.load(config.state_bucket_name, file.destination, obj, file.remote)
        assert last is not None
        between(last)
        waiting = [m for m in admin.pull(subscription, 10) if m.get("attributes", {}).get("run_id") == run_id]
        assert len(waiting) == 1, waiting
        assert json.loads(base64.b64decode(waiting[0]["data"]))["name"] == obj.name
        handler(continuation_event(stack, waiting[0]), config)
        invocations += 1
    assert checkpoint.load(config.state_bucket_name, file.destination, obj, file.remote) is None  # forgotten
    assert admin.pull(subscription, 10) == []  # nothing left to continue
    return invocations, last
