"""The local push (devstack/push): delivery, backoff, attempts, dead letters, concurrency, outages.

Real emulator, real dispatcher, real function processes; recording endpoints stand in for
functions where a test needs a function that always fails or that is slow.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from devstack import procs
from devstack.push.routes import read_routes
from devstack.stack import load_stack, restart_component, start_stack, stop_stack
from devstack.state import StackInfo
from shared import topology
from tests.private_stacks import BARE, failing_sink, private_stack
from tests.stack.sink import RecordingSink

FAN_OUT_SUB = "fan-out-export-requests"
EXPORT_SUB = "export-table-table-exports"
VERIFY_SUB = "verify-verify-requests"
SLOW_S = 0.5


class CountingSink(RecordingSink):
    """Answers after SLOW_S; remembers the most requests it had open at once."""

    def __init__(self) -> None:
        self.open_now = 0
        self.most_open = 0
        self._count = threading.Lock()
        super().__init__(self._answer)

    def _answer(self, path: str, body: Any) -> int:
        with self._count:
            self.open_now += 1
            self.most_open = max(self.most_open, self.open_now)
        time.sleep(SLOW_S)
        with self._count:
            self.open_now -= 1
        return 204


@pytest.fixture(scope="module")
def failing() -> Iterator[RecordingSink]:
    with failing_sink() as sink:
        yield sink


@pytest.fixture(scope="module")
def slow() -> Iterator[CountingSink]:
    sink = CountingSink()
    yield sink
    sink.close()


@pytest.fixture(scope="module")
def sink_stack(
    stack_root_factory: Callable[[str], Path], failing: RecordingSink, slow: CountingSink
) -> Iterator[StackInfo]:
    """No functions: fan_out always answers 500, export_table is slow."""
    overlay = "pubsub: {minimum_backoff_s: 1, maximum_backoff_s: 4, max_delivery_attempts: 5}\n"
    targets = {"fan_out": failing.url, "export_table": slow.url}
    with private_stack(stack_root_factory, "push", overlay, functions=False, without=BARE, targets=targets) as info:
        yield info


@pytest.fixture(scope="module")
def verify_stack(stack_root_factory: Callable[[str], Path]) -> Iterator[StackInfo]:
    """The verify function only (a real functions-framework process), default local retry policy."""
    root = stack_root_factory("push-fn")
    info = start_stack(root / "stack", functions=["verify"], without=("bigquery", "sftp", "box", "drive", "webhook"))
    yield info
    stop_stack(root / "stack")


def push_log(info: StackInfo) -> list[dict[str, Any]]:
    """The stack's push dispatcher log: one JSON object per delivery, ack, restart, dead letter."""
    lines = Path(info.component("push").log).read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def push_stats(info: StackInfo) -> dict[str, Any]:
    """The stack's push dispatcher's ``GET /stats``: per subscription, and its restarts."""
    with urllib.request.urlopen(f"http://127.0.0.1:{info.component('push').port}/stats", timeout=5) as resp:
        return json.loads(resp.read())


def _wait(what: str, check: Callable[[], Any], timeout_s: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _peek(info: StackInfo, subscription: str) -> list[dict[str, Any]]:
    """Messages waiting on a pull subscription, left there (nacked at once)."""
    admin = info.pubsub_admin()
    got = admin._call("POST", f"subscriptions/{subscription}:pull", {"maxMessages": 50, "returnImmediately": True}).get(
        "receivedMessages", []
    )
    if got:
        body = {"ackIds": [m["ackId"] for m in got], "ackDeadlineSeconds": 0}
        admin._call("POST", f"subscriptions/{subscription}:modifyAckDeadline", body)
    return [m["message"] for m in got]


def test_routes_follow_the_topology_and_infra(sink_stack: StackInfo) -> None:
    routes = {r.subscription: r for r in read_routes(sink_stack.root)}
    pushed = {"fan_out", "export_table"}  # the functions this stack targets
    expected = {s.name for s in topology.subscriptions() if s.function in pushed}
    assert {FAN_OUT_SUB, EXPORT_SUB} <= expected
    assert set(routes) == expected
    for route in routes.values():
        spec = topology.function(route.function)
        assert route.concurrency == spec.max_instances * spec.concurrency
        assert route.ack_deadline_s == min(600, max(10, spec.timeout_s))
    subs = {s["name"].rsplit("/", 1)[1]: s for s in sink_stack.pubsub_admin().subscriptions()}
    assert subs[FAN_OUT_SUB]["pushConfig"] == {}  # a pull subscription: the dispatcher pushes
    assert subs[FAN_OUT_SUB]["deadLetterPolicy"]["maxDeliveryAttempts"] == 5


def test_a_failing_function_gets_every_attempt_with_backoff_then_the_dead_letter_topic(
    sink_stack: StackInfo, failing: RecordingSink
) -> None:
    admin = sink_stack.pubsub_admin()
    marker = uuid.uuid4().hex
    message_id = admin.publish(topology.EXPORT_REQUESTS, f'{{"dataset": "{marker}"}}'.encode(), origin="test")
    dlq = sink_stack.dead_letter_subscriptions[FAN_OUT_SUB]
    dead = _wait(
        "the dead-lettered message", lambda: [m for m in admin.pull(dlq) if marker.encode() in m["data_bytes"]]
    )
    assert len(dead) == 1
    attrs = dead[0]["attributes"]
    assert attrs["origin"] == "test"
    assert attrs["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
    assert attrs["CloudPubSubDeadLetterSourceSubscription"] == FAN_OUT_SUB
    assert attrs["CloudPubSubDeadLetterSourceSubscriptionProject"] == sink_stack.project
    assert attrs["CloudPubSubDeadLetterSourceTopicPublishTime"].endswith("Z")
    ours = [r.body for r in failing.received if r.body["message"]["messageId"] == message_id]
    assert [b["deliveryAttempt"] for b in ours] == [1, 2, 3, 4, 5]
    assert {b["subscription"] for b in ours} == {f"projects/{sink_stack.project}/subscriptions/{FAN_OUT_SUB}"}
    assert base64.b64decode(ours[0]["message"]["data"]) == f'{{"dataset": "{marker}"}}'.encode()

    def logged() -> list[str] | None:
        """The message's actions once the last is logged (the dispatcher logs after publishing it)."""
        found = [e["action"] for e in push_log(sink_stack) if e.get("message_id") == message_id]
        return found if found[-1:] == ["dead-letter"] else None

    actions = _wait("the dead-letter in the push log", logged)
    # Exponential backoff within the retry policy (1 s doubling, capped at 4 s).
    assert actions == ["retry in 1 s", "retry in 2 s", "retry in 4 s", "retry in 4 s", "dead-letter"]
    assert not _peek(sink_stack, FAN_OUT_SUB)  # acked after dead-lettering: not redelivered


def test_concurrent_deliveries_never_exceed_the_function_limit(sink_stack: StackInfo, slow: CountingSink) -> None:
    limit = topology.function("export_table").max_concurrent_requests
    admin = sink_stack.pubsub_admin()
    tag = uuid.uuid4().hex
    count = 3 * limit
    body = {"messages": [{"data": base64.b64encode(f"{tag}-{i}".encode()).decode()} for i in range(count)]}
    admin._call("POST", f"topics/{topology.TABLE_EXPORTS}:publish", body)

    def ours() -> list:
        return [r for r in slow.received if base64.b64decode(r.body["message"]["data"]).decode().startswith(tag)]

    _wait("every slow delivery", lambda: len(ours()) >= count)
    assert 1 < slow.most_open <= limit
    stats = push_stats(sink_stack)["subscriptions"][EXPORT_SUB]
    assert stats["concurrency"] == limit
    assert stats["max_delivering"] <= limit
    assert len({base64.b64decode(r.body["message"]["data"]) for r in ours()}) == count


def test_dev_up_on_a_running_stack_keeps_pubsub_state_and_the_dead_letter_queue(
    sink_stack: StackInfo, failing: RecordingSink
) -> None:
    admin = sink_stack.pubsub_admin()
    marker = uuid.uuid4().hex
    admin.publish(topology.EXPORT_REQUESTS, marker.encode())
    dlq = sink_stack.dead_letter_subscriptions[FAN_OUT_SUB]
    _wait(
        "the dead letter", lambda: any(marker in base64.b64decode(m["data"]).decode() for m in _peek(sink_stack, dlq))
    )
    topic_marker = f"kept-{uuid.uuid4().hex[:8]}"
    admin.create_topic(topic_marker)
    before = load_stack(sink_stack.root)
    for name in ("push", "relay"):
        comp = before.component(name)
        os.kill(comp.pid, signal.SIGKILL)
    _wait(  # both: a SIGKILLed process still alive when start_stack looks is kept, not restarted
        "the killed processes to be gone",
        lambda: (
            not any(
                procs.is_alive(before.component(name).pid, before.component(name).create_time)
                for name in ("push", "relay")
            )
        ),
    )

    again = start_stack(sink_stack.root, functions=False)  # what `offsite dev up` calls

    assert again.component("pubsub").pid == before.component("pubsub").pid  # the emulator was not restarted
    assert again.component("gcs").pid == before.component("gcs").pid
    for name in ("push", "relay"):
        assert again.component(name).pid != before.component(name).pid
        assert again.component(name).port == before.component(name).port
        assert again.component(name).health == "ok"
    assert any(marker in base64.b64decode(m["data"]).decode() for m in _peek(sink_stack, dlq))
    topics = admin._call("GET", "topics")["topics"]
    assert any(t["name"].endswith(f"/topics/{topic_marker}") for t in topics)
    # The new dispatcher delivers: a new message reaches the (failing) endpoint again.
    second = admin.publish(topology.EXPORT_REQUESTS, b"after")
    _wait(
        "a delivery by the new dispatcher",
        lambda: any(r.body["message"]["messageId"] == second for r in failing.received),
    )


def _refuses(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def _results(admin: Any, watch: str, request_ids: set[str], seen: dict[str, dict]) -> bool:
    """Collect verify results by the message id of the request they answer."""
    for msg in admin.pull(watch, 50):
        result = json.loads(msg["data_bytes"])
        if result.get("message_id") in request_ids:
            seen[result["message_id"]] = result
    return set(seen) == request_ids


def test_a_killed_function_is_restarted_and_gets_what_was_sent_while_it_was_down(verify_stack: StackInfo) -> None:
    admin = verify_stack.pubsub_admin()
    watch = f"watch-{uuid.uuid4().hex[:8]}"
    admin.create_subscription(watch, topology.VERIFY_RESULTS)
    before = verify_stack.component("verify")
    # The instance dies whole, as a crashed Cloud Run instance does: gunicorn's worker outlives a
    # killed master by up to a second and would still take (and then reset) what was sent.
    instance = psutil.Process(before.pid)
    procs.kill_tree(instance)  # a worker may end with its master first
    _wait("the instance to refuse connections", lambda: _refuses(before.port), 30)  # not reaped: gone
    sent = {admin.publish(topology.VERIFY_REQUESTS, f"not json {uuid.uuid4().hex}".encode()) for _ in range(3)}
    seen: dict[str, dict] = {}
    _wait("a result for every request sent during the outage", lambda: _results(admin, watch, sent, seen), 120)
    assert all(r.get("status") == "rejected" for r in seen.values())
    now = load_stack(verify_stack.root).component("verify")
    assert now.pid != before.pid and procs.is_alive(now.pid, now.create_time)
    assert now.port == before.port

    # sent while it was down: held until it was back (as Cloud Run queues them), no attempt spent;
    # the dispatcher logs a delivery after the function answered, so after its result may be seen
    def deliveries() -> list[dict[str, Any]]:
        return [e for e in push_log(verify_stack) if e.get("message_id") in sent]

    _wait("every delivery logged", lambda: len(deliveries()) == len(sent))
    logged = deliveries()
    assert all((e["action"], e["attempt"]) == ("ack", 1) for e in logged), json.dumps(logged)
    assert any("held" in e["note"] for e in logged), json.dumps(logged)
    log = push_log(verify_stack)
    assert any(e.get("action") == "restart" and e.get("component") == "verify" for e in log)
    assert not [e for e in log if e.get("action") == "dead-letter"]
    assert not _peek(verify_stack, verify_stack.dead_letter_subscriptions[VERIFY_SUB])
    assert push_stats(verify_stack)["restarts"].get("verify", 0) >= 1


def test_restart_one_function(verify_stack: StackInfo) -> None:
    before = load_stack(verify_stack.root)
    info = restart_component(verify_stack.root, "verify")  # what `offsite dev restart verify` calls
    after = info.component("verify")
    assert after.pid != before.component("verify").pid and after.health == "ok"
    assert procs.is_alive(after.pid, after.create_time)
    assert not procs.is_alive(before.component("verify").pid, before.component("verify").create_time)
    for name in ("pubsub", "push", "gcs"):
        assert info.component(name).pid == before.component(name).pid
    admin = verify_stack.pubsub_admin()
    watch = f"watch-{uuid.uuid4().hex[:8]}"
    admin.create_subscription(watch, topology.VERIFY_RESULTS)
    sent = admin.publish(topology.VERIFY_REQUESTS, f"not json {uuid.uuid4().hex}".encode())
    seen: dict[str, dict] = {}
    _wait("the restarted function's result", lambda: _results(admin, watch, {sent}, seen))


def _stack_processes(info: StackInfo) -> list[psutil.Process]:
    found = []
    for comp in info.components:
        proc = procs.process(comp.pid, comp.create_time)
        assert proc is not None, f"{comp.name} is not running"
        found += procs.tree(proc)
    return found


@pytest.mark.parametrize("which", ["bare_stack", "stack"])
def test_the_stacks_secrets_are_in_no_command_line_and_no_log(which: str, request: pytest.FixtureRequest) -> None:
    """Every process of a started stack (functions and their gunicorn workers included), every log:
    the Box developer token, and the Drive server's client secret and refresh token."""
    info: StackInfo = request.getfixturevalue(which)
    token = info.box.developer_token
    drive = Path(info.root, "drive")
    secrets = {
        "box developer token": token,
        "drive client secret": (drive / "client_secret").read_text().strip(),
        "drive refresh token": (drive / "refresh_token").read_text().strip(),
    }
    assert all(len(secret) >= 20 for secret in secrets.values())
    processes = _stack_processes(info)
    assert any("devstack.boxapi" in " ".join(p.cmdline()) for p in processes)
    assert any("devstack.driveapi" in " ".join(p.cmdline()) for p in processes)
    for proc in processes:
        cmdline = " ".join(proc.cmdline())
        assert [what for what, secret in secrets.items() if secret in cmdline] == [], proc.cmdline()
    logs = list(Path(info.root, "logs").glob("*.log"))
    assert {Path(c.log) for c in info.components} <= set(logs)
    for log in logs:
        text = log.read_text(errors="replace")
        assert [what for what, secret in secrets.items() if secret in text] == [], log
    # The token still works: the Box server reads it from its file.
    req = urllib.request.Request(f"{info.box.base_url}/2.0/users/me")
    req.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def test_a_local_concurrency_override_is_parsed_per_function() -> None:
    from devstack.errors import StackError
    from devstack.push.routes import ENV_CONCURRENCY, concurrency_for

    env = {ENV_CONCURRENCY: "export_table=100, transfer_sftp=2"}
    assert concurrency_for("export_table", 10, env) == 100
    assert concurrency_for("transfer_sftp", 4, env) == 2
    assert concurrency_for("verify", 10, env) == 10
    with pytest.raises(StackError, match="is not NAME=N"):
        concurrency_for("verify", 10, {ENV_CONCURRENCY: "verify=0"})


def test_a_push_unanswered_within_its_ack_deadline_is_redelivered_as_the_next_attempt(bare_stack: StackInfo) -> None:
    """As Pub/Sub push: a request the endpoint does not answer within the subscription's ack
    deadline counts as a failed attempt, and the message comes again (deliveryAttempt 2) after
    the backoff, even though the first request is still running."""
    from devstack.pubsub_admin import PushRetry
    from devstack.push.dispatcher import SubscriptionWorker
    from devstack.push.emulator import Emulator
    from devstack.push.routes import Route

    hold = threading.Event()

    def answer(path: str, body: Any) -> int:
        if body["deliveryAttempt"] == 1:
            hold.wait(30)  # past the 1 s ack deadline
        return 204

    admin = bare_stack.pubsub_admin()
    name = f"ackdeadline-{uuid.uuid4().hex[:8]}"
    admin.create_topic(name)
    admin.create_topic(name + "-dlq")
    retry = PushRetry(1, 1, 5)
    admin.create_subscription(name, name, retry=retry, dead_letter_topic=name + "-dlq", retry_policy=False)
    sink = RecordingSink(answer)
    stop = threading.Event()
    route = Route(
        subscription=name,
        function="slow",
        endpoint=sink.url,
        dead_letter_topic=name + "-dlq",
        ack_deadline_s=1,
        minimum_backoff_s=1,
        maximum_backoff_s=1,
        max_delivery_attempts=5,
        concurrency=2,
    )
    worker = SubscriptionWorker(Emulator(bare_stack.pubsub_host, bare_stack.project), route, stop)
    try:
        worker.start()
        message_id = admin.publish(name, b"slow work")
        worker.ring()  # what this topic's doorbell would do (this test's topic has none)
        _wait("the redelivery", lambda: worker.acked >= 1, timeout_s=30)
        attempts = [r.body["deliveryAttempt"] for r in sink.received if r.body["message"]["messageId"] == message_id]
        assert attempts == [1, 2]  # the second came while the first was still held
        assert not hold.is_set()
    finally:
        hold.set()
        stop.set()
        sink.close()


def test_the_routes_of_one_function_share_its_request_slots(bare_stack: StackInfo) -> None:
    """A function with several triggers takes its deployed concurrency in all, not per trigger
    (before: each route had the whole limit, so export_table could get 3 x 160 requests at once
    and verify 21 x 160, where Cloud Run queues and then answers 429)."""
    from devstack.pubsub_admin import PushRetry
    from devstack.push.dispatcher import start_workers
    from devstack.push.emulator import Emulator
    from devstack.push.routes import Route

    admin, tag = bare_stack.pubsub_admin(), uuid.uuid4().hex[:8]
    sink = CountingSink()
    stop = threading.Event()
    routes = []
    for side in ("a", "b"):
        name = f"slots-{side}-{tag}"
        admin.create_topic(name)
        admin.create_topic(name + "-dlq")
        admin.create_subscription(
            name, name, retry=PushRetry(1, 1, 5), dead_letter_topic=name + "-dlq", retry_policy=False
        )
        routes.append(Route(name, "slow", sink.url, name + "-dlq", 30, 1, 1, 5, concurrency=2))
    workers = start_workers(Emulator(bare_stack.pubsub_host, bare_stack.project), routes, stop)
    try:
        for route, worker in zip(routes, workers, strict=True):
            for i in range(6):
                admin.publish(route.subscription, f"{route.subscription}-{i}".encode())
            worker.ring()
        _wait("all twelve deliveries", lambda: sum(w.acked for w in workers) >= 12, timeout_s=60)
        assert sink.most_open == 2  # the function's limit, over both routes
    finally:
        stop.set()
        sink.close()
