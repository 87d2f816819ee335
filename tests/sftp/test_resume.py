"""A transfer longer than its time budget: checkpoint, continuation, resume — on the local stack.

transfer_sftp's handler runs here with a budget of 0 s, so each invocation sends one chunk and
stops; it checkpoints in GCS and publishes on ``delivery-continuations``, which this test feeds
back to the same handler, as the push subscription does. The file must arrive whole, once,
across several invocations, with no byte sent twice.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from collections.abc import Callable
from typing import Any

from devstack.state import StackInfo
from shared.config import Config
from shared.delivery import checkpoint
from shared.events import parse_storage
from shared.ids import DestinationId, Stage
from shared.messages import DeliveryReceipt
from shared.stages.deliver import handler_for
from shared.topology import DELIVERY_CONTINUATIONS, PUBSUB_PUBLISHED
from tests.sftp import delivery_kit
from tests.sftp.delivery_kit import DAY, finalize_event, shard, write_run

# the delivery tests' fixtures (a bare stack: no function competes for the events)
stack, config, receipts = delivery_kit.stack, delivery_kit.config, delivery_kit.receipts

SIZE = 5 * 1024 * 1024 + 4321  # six 1 MiB chunks


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


def test_a_transfer_longer_than_its_budget_arrives_whole_across_invocations(
    stack: StackInfo, config: Config, receipts: Callable[[], list[DeliveryReceipt]]
) -> None:
    admin = stack.pubsub_admin()
    subscription = f"continuations-{uuid.uuid4().hex[:8]}"
    admin.create_subscription(subscription, DELIVERY_CONTINUATIONS)
    handler = handler_for(Stage.TRANSFER_SFTP, budget_s=0.0)
    name, data = shard("orders"), os.urandom(SIZE)
    run, resources = write_run(config, ("sftp:local",), {name: data})
    obj = parse_storage(finalize_event(resources[name]))
    remote = f"sales/orders/{DAY:%Y%m%d}/{run.run_id}/{name}"
    landed = stack.sftp.directory / remote

    handler(finalize_event(resources[name]), config)
    invocations, last = 1, None
    while not [r for r in receipts() if r.run_id == run.run_id]:
        assert invocations < 50, "the transfer made no progress"
        last = checkpoint.load(config.state_bucket_name, DestinationId("sftp", "local"), obj, remote)
        assert last is not None and last.bytes_done < SIZE and not landed.exists()
        waiting = [m for m in admin.pull(subscription, 10) if m.get("attributes", {}).get("run_id") == run.run_id]
        assert len(waiting) == 1, waiting
        assert json.loads(base64.b64decode(waiting[0]["data"]))["name"] == obj.name
        handler(continuation_event(stack, waiting[0]), config)
        invocations += 1

    assert invocations >= 3
    assert landed.read_bytes() == data
    assert [r.status for r in receipts() if r.run_id == run.run_id] == ["uploaded"]
    got = [r for r in receipts() if r.run_id == run.run_id][0]
    assert got.sha1 == hashlib.sha1(data).hexdigest() and got.size == SIZE
    assert last is not None and last.invocations == invocations - 1
    assert last.bytes_sent + (SIZE - last.bytes_done) == SIZE  # no chunk was sent twice
    assert checkpoint.load(config.state_bucket_name, DestinationId("sftp", "local"), obj, remote) is None  # forgotten
    assert admin.pull(subscription, 10) == []  # nothing left to continue
