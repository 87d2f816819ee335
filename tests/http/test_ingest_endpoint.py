"""POST /ingest and GET /health through the running http_trigger: an ingest request is checked as
ingest_sqlite checks ingest-requests, and published there; the health answer names its time."""

from __future__ import annotations

import datetime as dt
import json
import uuid

from shared.gcp import clients
from shared.topology import INGEST_REQUESTS
from tests.http.conftest import Trigger


def _subscription(trigger: Trigger) -> str:
    name = f"projects/{trigger.stack.project}/subscriptions/test-ingest-{uuid.uuid4().hex[:12]}"
    clients.subscriber_client().create_subscription(
        name=name, topic=f"projects/{trigger.stack.project}/topics/{INGEST_REQUESTS}"
    )
    return name


def _published(subscription: str, run_id: str) -> list[dict[str, object]]:
    response = clients.subscriber_client().pull(subscription=subscription, max_messages=10, timeout=30)
    bodies = [json.loads(m.message.data) for m in response.received_messages]
    return [b for b in bodies if b.get("run_id") == run_id]


def test_post_ingest_publishes_a_checked_ingest_request(trigger: Trigger) -> None:
    assert trigger.config.ingest is not None  # the stack's config syncs the sample SQLite app
    subscription = _subscription(trigger)
    started = trigger.call("POST", "/ingest", {"tables": ["users"], "full": True})
    assert started.status == 202, started.body
    run_id = started.body["run_id"]
    assert started.body["topic"] == INGEST_REQUESTS and started.body["request"]["tables"] == ["users"]
    (published,) = _published(subscription, run_id)
    assert {k: v for k, v in published.items() if k != "schema_version"} == {
        "tables": ["users"],
        "full": True,
        "run_id": run_id,
    }

    every = trigger.call("POST", "/ingest")  # no body: every table, incrementally
    assert every.status == 202 and every.body["request"]["full"] is False
    assert every.body["request"].get("tables") is None

    bad = trigger.call("POST", "/ingest", {"full": "yes"})
    assert bad.status == 400 and bad.body["error"] == "ingest request.full: expected true or false, got 'yes'"
    unselected = trigger.call("POST", "/ingest", {"tables": ["sqlite_sequence"]})
    assert unselected.status == 400
    assert unselected.body["error"].startswith(
        "ingest request.tables: 'sqlite_sequence' is not a table the config syncs"
    )
    wrong = trigger.call("PUT", "/ingest")
    assert wrong.status == 405 and wrong.headers["Allow"] == "POST, GET"


def test_health_names_the_service_and_the_time(trigger: Trigger) -> None:
    for path in ("/", "/health"):
        reply = trigger.call("GET", path)
        assert reply.status == 200 and reply.body["status"] == "healthy" and reply.body["service"]
        answered = dt.datetime.fromisoformat(reply.body["timestamp"])
        assert abs(answered - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)
    assert trigger.call("GET", "/health", token=None).status == 401  # health is behind the token too
