"""The full stack (the `stack` fixture): function processes, their env and subscriptions."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid

import psutil

from devstack.launches import AUDIT_LOG_TOPIC, REPO
from devstack.state import StackInfo
from shared import topology


def test_every_function_process_answers(stack: StackInfo) -> None:
    assert set(stack.functions) == {fn.name for fn in topology.FUNCTIONS}
    for name, url in stack.functions.items():
        try:
            urllib.request.urlopen(url + "/", timeout=10).close()
        except urllib.error.HTTPError as exc:  # a GET is not a CloudEvent: any answer means it serves
            # (the HTTP trigger wants an ID token: tests/http)
            assert exc.code in ((401,) if topology.function(name).http else (400, 405, 415, 500)), (name, exc.code)


def test_function_processes_get_the_contract_env(stack: StackInfo) -> None:
    for name in stack.functions:
        environ = psutil.Process(stack.component(name).pid).environ()
        assert {k: environ.get(k) for k in stack.env} == stack.env, name
        assert str(REPO) in environ["PYTHONPATH"].split(":")


def test_push_subscriptions_follow_the_topology(stack: StackInfo) -> None:
    """Emulator pull subscriptions with the dead-letter policy; the push dispatcher's routes carry the rest."""
    from devstack.push.routes import read_routes
    from shared.config_load import load_config

    pubsub = load_config(stack.config_path, environ={}).pubsub
    subs = {s["name"].rsplit("/", 1)[1]: s for s in stack.pubsub_admin().subscriptions()}
    routes = {r.subscription: r for r in read_routes(stack.root)}
    for sub in topology.subscriptions():
        got, route = subs[sub.name], routes[sub.name]
        assert got["pushConfig"] == {}  # delivered by devstack/push, not by the emulator
        if sub.trigger.kind == "gcs":
            assert got["topic"].endswith(f"/topics/{stack.gcs_notification_topic}")
            assert route.endpoint == f"{stack.relay_url}/to/{sub.function}"
        elif sub.trigger.kind == "auditlog":  # the BigQuery front's audit-log entries, as Eventarc delivers them
            assert got["topic"].endswith(f"/topics/{AUDIT_LOG_TOPIC}")
            assert route.endpoint == f"{stack.relay_url}/auditlog/to/{sub.function}"
        else:
            assert got["topic"].endswith(f"/topics/{sub.trigger.topic}")
            assert (
                route.endpoint == f"{stack.functions[sub.function]}/projects/{stack.project}/topics/{sub.trigger.topic}"
            )
        assert got["deadLetterPolicy"]["deadLetterTopic"].endswith(f"/topics/{sub.dead_letter_topic}")
        assert got["deadLetterPolicy"]["maxDeliveryAttempts"] == pubsub.max_delivery_attempts
        assert "retryPolicy" not in got  # the dispatcher applies the backoff
        assert route.dead_letter_topic == sub.dead_letter_topic
        assert route.max_delivery_attempts == pubsub.max_delivery_attempts
        assert (route.minimum_backoff_s, route.maximum_backoff_s) == (
            pubsub.minimum_backoff_s,
            pubsub.maximum_backoff_s,
        )
        assert route.ack_deadline_s == got["ackDeadlineSeconds"]
        assert route.concurrency == topology.function(sub.function).max_concurrent_requests


def test_a_bad_request_reaches_verify_and_is_reported_rejected(stack: StackInfo) -> None:
    """Pub/Sub push → functions-framework → verify → verify-results: the wiring works end to end."""
    admin = stack.pubsub_admin()
    watch = f"watch-results-{uuid.uuid4().hex[:8]}"
    admin.create_subscription(watch, topology.VERIFY_RESULTS)
    marker = uuid.uuid4().hex
    admin.publish(topology.VERIFY_REQUESTS, f"not json {marker}".encode())
    deadline = time.monotonic() + 90
    results: list[dict] = []
    while not any(r.get("status") == "rejected" for r in results):
        assert time.monotonic() < deadline, f"no rejected result on verify-results; got {results}"
        results += [json.loads(m["data_bytes"]) for m in admin.pull(watch)]
        time.sleep(0.3)
