"""The dispatcher's doorbell: a publish wakes the pull loop of its topic's subscriptions.

The emulator pushes every message of a routed topic to the dispatcher (``doorbell-<topic>``
push subscriptions, made by devstack.stack); the pull loops otherwise poll only every few
seconds, so an idle stack costs next to no CPU. Also: a nacked message's redelivery time ends
the wait on its own.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devstack.push.dispatcher import SubscriptionWorker
from devstack.push.routes import DOORBELL_PREFIX, Route, read_routes
from devstack.state import StackInfo
from tests.private_stacks import BARE, private_stack
from tests.stack.sink import RecordingSink
from tests.stack.test_push import push_stats

ROUTE = Route("sub", "fn", "http://127.0.0.1:9/", "dlq", 10, 1.0, 4.0, 5, 1, topic="t")


def worker() -> SubscriptionWorker:
    return SubscriptionWorker(emulator=None, route=ROUTE, stop=threading.Event())  # type: ignore[arg-type]


def test_a_ring_ends_the_idle_wait() -> None:
    w = worker()
    threading.Timer(0.1, w.ring).start()
    assert w._idle_wait(60.0) is True


def test_a_due_redelivery_ends_the_idle_wait_and_is_dropped() -> None:
    w = worker()
    w._redelivery_at(time.monotonic() + 0.2)
    w._bell.clear()  # only the due time may wake it
    assert w._idle_wait(60.0) is True
    assert w._due == []


def test_nothing_to_wake_for_times_out() -> None:
    assert worker()._idle_wait(0.05) is False


@pytest.fixture(scope="module")
def sink() -> Iterator[RecordingSink]:
    sink = RecordingSink(lambda path, body: 204)
    yield sink
    sink.close()


@pytest.fixture(scope="module")
def bell_stack(stack_root_factory: Callable[[str], Path], sink: RecordingSink) -> Iterator[StackInfo]:
    """fan_out's pushes go to ``sink``."""
    targets = {"fan_out": sink.url}
    with private_stack(stack_root_factory, "bell", "", functions=False, without=BARE, targets=targets) as info:
        yield info


def test_a_published_message_rings_its_topics_doorbell_and_is_delivered(
    bell_stack: StackInfo, sink: RecordingSink
) -> None:
    (route,) = read_routes(bell_stack.root)
    subs = {s["name"].rsplit("/", 1)[1]: s for s in bell_stack.pubsub_admin().subscriptions()}
    doorbell = subs[DOORBELL_PREFIX + route.topic]
    assert doorbell["pushConfig"]["pushEndpoint"].endswith(f"/doorbell/{route.topic}")
    assert push_stats(bell_stack)["subscriptions"][route.subscription]["rings"] == 0  # nothing published yet
    bell_stack.pubsub_admin().publish(route.topic, b'{"doorbell": true}')
    (got,) = sink.wait_for(lambda received: len(received) == 1, timeout_s=60)
    assert base64.b64decode(got.body["message"]["data"]) == b'{"doorbell": true}'
    # The emulator pushes to the doorbell on its own schedule: on a busy machine the pull loop's
    # own poll may deliver the message first, and the ring arrives after it.
    deadline = time.monotonic() + 30
    while push_stats(bell_stack)["subscriptions"][route.subscription]["rings"] < 1:
        assert time.monotonic() < deadline, "the publish never rang its topic's doorbell"
        time.sleep(0.2)
