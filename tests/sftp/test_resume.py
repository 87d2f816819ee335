"""A transfer longer than its time budget: checkpoint, continuation, resume — on the local stack.

transfer_sftp's handler runs here with a budget of 0 s, so each invocation sends one chunk and
stops; it checkpoints in GCS and publishes on ``delivery-continuations``, which the test feeds
back to the same handler (tests/resume_kit.py), as the push subscription does. The file must arrive whole, once,
across several invocations, with no byte sent twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from devstack.state import StackInfo
from shared.config import Config
from shared.delivery.checkpoint import Checkpoint
from shared.ids import DestinationId, Stage
from shared.messages import DeliveryReceipt
from tests.resume_kit import BigFile, deliver_in_steps
from tests.sftp import delivery_kit

# the delivery tests' fixtures (a bare stack: no function competes for the events)
stack, config, receipts = delivery_kit.stack, delivery_kit.config, delivery_kit.receipts

SIZE = 5 * 1024 * 1024 + 4321  # six 1 MiB chunks


def test_a_transfer_longer_than_its_budget_arrives_whole_across_invocations(
    stack: StackInfo, config: Config, receipts: Callable[[], list[DeliveryReceipt]]
) -> None:
    file = BigFile.written(config, DestinationId("sftp", "local"), SIZE)
    landed = stack.sftp.directory / file.remote

    def between(last: Checkpoint) -> None:
        assert last.bytes_done < SIZE and not landed.exists()

    invocations, last = deliver_in_steps(stack, config, receipts, Stage.TRANSFER_SFTP, file, between)

    assert invocations >= 3
    assert landed.read_bytes() == file.data
    assert [r.status for r in receipts() if r.run_id == file.run.run_id] == ["uploaded"]
    got = [r for r in receipts() if r.run_id == file.run.run_id][0]
    assert got.sha1 == hashlib.sha1(file.data).hexdigest() and got.size == SIZE
    assert last is not None and last.invocations == invocations - 1
    assert last.bytes_sent + (SIZE - last.bytes_done) == SIZE  # no chunk was sent twice
