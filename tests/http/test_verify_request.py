"""POST /verify (no run id) through the running http_trigger: the body is a verify request as on
verify-requests (``{"export", "date"}``, ``{"dataset", "table", "date"}``), checked against the
config, published, and answered by the real verify process (a ``verify:request`` result)."""

from __future__ import annotations

import datetime as dt
import json
import random
import time
import uuid
from typing import Any

import pytest

from shared.gcp import clients
from shared.topology import VERIFY_REQUESTS
from tests.http.conftest import Trigger


def _subscription(trigger: Trigger) -> str:
    name = f"projects/{trigger.stack.project}/subscriptions/test-verify-{uuid.uuid4().hex[:12]}"
    clients.subscriber_client().create_subscription(
        name=name, topic=f"projects/{trigger.stack.project}/topics/{VERIFY_REQUESTS}"
    )
    return name


def test_post_verify_with_export_and_date_is_answered_by_verify(trigger: Trigger) -> None:
    from shared.http_trigger.progress import read_results
    from shared.ids import Stage

    # a day of January 2025 (orders_daily has rows every day) that no other test exports
    day = dt.date(2025, 1, random.randint(10, 31)).isoformat()
    export = trigger.call("POST", "/sync?wait=400", {"export": "orders_daily", "date": day})
    assert export.status == 200 and export.body["complete"] is True, export.body
    run_id = export.body["run_id"]
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)

    subscription = _subscription(trigger)
    reply = trigger.call("POST", "/verify", {"export": "orders_daily", "date": day})
    assert reply.status == 202, reply.body
    request = {"export": "orders_daily", "date": day, "schema_version": 1, "sweep": False}
    assert reply.body["topic"] == VERIFY_REQUESTS and reply.body["request"] == request
    assert reply.body["run_id"] is None and reply.body["message_id"]
    pulled = clients.subscriber_client().pull(subscription=subscription, max_messages=10, timeout=30)
    assert [json.loads(m.message.data) for m in pulled.received_messages] == [request]

    # verify finds the day's run of the export and reports it again (stage verify:request)
    deadline = time.monotonic() + 120
    while True:
        answered = [r for r in read_results(trigger.config, run_id, since) if r.stage == Stage.VERIFY_REQUEST]
        if answered:
            break
        assert time.monotonic() < deadline, "no verify:request result"
        time.sleep(1.0)
    assert {(str(r.destination), str(r.status)) for r in answered} == {("sftp:local", "in_sync")}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(
            {"export": "nope", "date": "2025-01-08"},
            "verify request.export: 'nope' is not a configured export (configured: orders_daily)",
            id="unknown-export",
        ),
        pytest.param(
            {"dataset": "nope", "table": "orders", "date": "2025-01-08"},
            "verify request.dataset: 'nope' is not a configured dataset (configured: sales)",
            id="unknown-dataset",
        ),
        pytest.param(
            {"export": "orders_daily", "date": "2025-01-08", "destination": "sftp:nobody"},
            "verify request.destination: 'sftp:nobody' is not a configured destination (configured: box, sftp:local",
            id="unknown-destination",
        ),
        pytest.param({"export": "orders_daily"}, "verify request.date: required with 'export'", id="no-date"),
        pytest.param(
            {"date": "2025-01-08"},
            "verify request: give exactly one of run_id, dataset+table+date, export+date, or sweep: true",
            id="no-form",
        ),
        pytest.param(
            {"export": "orders_daily", "date": "08/01/2025"},
            "verify request.date: '08/01/2025' is not a date",
            id="date",
        ),
        pytest.param(b"{not json", "verify request: not valid JSON", id="not-json"),
        pytest.param(b"", "verify request: not valid JSON", id="empty"),
        pytest.param(b"[]", "verify request: expected a JSON object, got list", id="not-an-object"),
    ],
)
def test_bad_verify_requests_get_400_naming_the_field_and_publish_nothing(
    trigger: Trigger, body: Any, message: str
) -> None:
    subscription = _subscription(trigger)
    reply = trigger.call("POST", "/verify", body)
    assert reply.status == 400, reply.body
    assert reply.body["error"].startswith(message), reply.body
    # a marker request that is published: only it arrives
    marker = {"dataset": "sales", "table": f"t{uuid.uuid4().hex[:8]}", "date": "2025-01-08"}
    assert trigger.call("POST", "/verify", marker).status == 202
    pulled = clients.subscriber_client().pull(subscription=subscription, max_messages=10, timeout=30)
    published = [json.loads(m.message.data) for m in pulled.received_messages]
    assert [{k: p.get(k) for k in marker} for p in published] == [marker]
