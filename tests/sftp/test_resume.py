"""A transfer longer than its time budget: checkpoint, continuation, resume — on the local stack.

transfer_sftp's handler runs here with a budget of 0 s, so each invocation sends one chunk and
stops; it checkpoints in GCS and publishes on ``delivery-continuations``, which the test feeds
back to the same handler (tests/resume_kit.py), as the push subscription does. The file must arrive whole, once,
across several invocations, with no byte sent twice.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

from devstack.state import StackInfo
from devstack.throttle import ThrottledProxy
from shared.config import Config, Destinations
from shared.delivery import checkpoint
from shared.delivery.checkpoint import Checkpoint
from shared.destinations.sftp.stream import DRAIN_S
from shared.events import parse_storage
from shared.ids import DestinationId, Stage
from shared.messages import DeliveryReceipt
from shared.secrets import Secret
from shared.stages.deliver import handler_for
from tests.resume_kit import BigFile, deliver_in_steps
from tests.sftp import delivery_kit
from tests.sftp.conftest import make_partner
from tests.sftp.delivery_kit import DAY, finalize_event, shard, write_run
from tests.sftp.sshd_server import Sshd

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


def test_destinations_of_one_invocation_share_its_budget(
    stack: StackInfo, config: Config, receipts: Callable[[], list[DeliveryReceipt]], sshd: Sshd, workdir: Path
) -> None:
    """A file routed to a slow partner and a fast one: the slow one uses the invocation's budget,
    and the fast one, next, gets what is left (nothing), so it checkpoints at once and continues
    in an invocation of its own. Before, each destination got a full budget one after the other
    (480 s + 480 s in one 540 s invocation: the timeout cut the second one off)."""
    proxy = ThrottledProxy(sshd.port, 1_000_000)
    try:
        known = sshd.known_hosts.replace(f"]:{sshd.port} ", f"]:{proxy.port} ")
        slow = make_partner(sshd, workdir / "slow", port=proxy.port, known_hosts=Secret(known))
        fast = make_partner(sshd, workdir / "fast")
        for folder in ("slow", "fast"):
            (workdir / folder).mkdir()
            os.chown(workdir / folder, workdir.stat().st_uid, workdir.stat().st_gid)  # the login user's
        config = config.model_copy(update={"destinations": Destinations(box=None, sftp={"slow": slow, "fast": fast})})
        name, data = shard("orders"), os.urandom(8 * 1024 * 1024)
        run, resources = write_run(config, ("sftp:slow", "sftp:fast"), {name: data})
        started = time.monotonic()
        handler_for(Stage.TRANSFER_SFTP, budget_s=2.0)(finalize_event(resources[name]), config)
        took = time.monotonic() - started
    finally:
        proxy.close()
    remote = f"sales/orders/{DAY:%Y%m%d}/{run.run_id}/{name}"
    assert not (workdir / "slow" / remote).exists()  # 8 MB at 1 MB/s: paused at the budget
    assert not (workdir / "fast" / remote).exists(), "the fast partner got a budget of its own"
    obj = parse_storage(finalize_event(resources[name]))
    for partner in ("slow", "fast"):
        assert checkpoint.load(config.state_bucket_name, DestinationId("sftp", partner), obj, remote) is not None
    assert [r for r in receipts() if r.run_id == run.run_id] == []
    assert took < 2.0 + DRAIN_S + 5
