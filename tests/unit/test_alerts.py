"""Slack alerts against a real local webhook server: content, statuses, aggregation per run,
rate limit without loss, never blocking."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from devstack.ports import free_port
from shared import log
from shared.config import Config
from shared.config_load import from_dict
from shared.messages import VerifyResult
from shared.reporting.alert_messages import message, rerun_commands
from shared.reporting.alert_outbox import MemoryOutbox, group_of
from shared.reporting.alerts import ProcessRateLimiter, alert, flush_all


class Webhook:
    """A Slack-like webhook on loopback that records bodies and answers with ``status``."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.status = 200
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                hook.bodies.append(json.loads(body))
                self.send_response(hook.status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook/secret-token-123"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


def config_for(url: str | None, min_interval_s: int = 60) -> Config:
    raw: dict[str, Any] = {"project": "p", "bucket": "bkt", "alerts": {"min_interval_s": min_interval_s}}
    if url:
        raw["alerts"]["slack_webhook_url"] = url
    return from_dict(Config, raw, "")


MISMATCH = VerifyResult(
    status="mismatch",
    destination="sftp:local",
    run_id="r20250108a",
    source={"mode": "table", "project": "p", "dataset": "sales", "table": "orders"},
    check="sha1",
    missing=["orders_20250108-000000000001.parquet"],
    hash_differs=["orders_20250108-000000000000.parquet"],
    files_expected=2,
    files_present=1,
    bytes_expected=200,
    bytes_present=100,
    heal_attempts=1,
    reason="self-heal attempts used: 1 of 1",
    stage="verify",
    date="2025-01-08",
)


def variant(**changes: Any) -> VerifyResult:
    """MISMATCH with some fields changed (validated, as a result read from the wire would be)."""
    return VerifyResult.model_validate({**MISMATCH.to_dict(), **changes})


def test_message_names_run_destination_problems_and_the_rerun_commands() -> None:
    text = message(MISMATCH)["text"]
    assert (
        "mismatch" in text and "`r20250108a`" in text and "sales.orders (2025-01-08)" in text and "`sftp:local`" in text
    )
    assert "missing (1): orders_20250108-000000000001.parquet" in text
    assert "hash differs (1): orders_20250108-000000000000.parquet" in text
    assert "check: sha1 · files 1/2" in text and "self-heal attempts: 1" in text
    assert "offsite verify r20250108a --destination sftp:local" in text
    assert (
        """gcloud pubsub topics publish verify-requests --message='{"run_id":"r20250108a","destination":"sftp:local"}'"""
        in text
    )


def test_a_failed_restore_drill_says_how_to_restore_by_hand() -> None:
    failed = variant(
        status="restore_failed",
        stage="restore_drill",
        check=None,
        missing=[],
        hash_differs=[],
        reason="restore: sftp:local:/sales/orders/x.parquet is damaged",
    )
    text = message(failed)["text"]
    assert "restore_drill: restore_failed" in text and "x.parquet is damaged" in text and "check:" not in text
    assert rerun_commands(failed)[0].startswith("offsite restore r20250108a --from sftp:local --table sales.orders")


def test_rejected_message_without_run_has_reason_and_no_rerun() -> None:
    rejected = VerifyResult(
        status="rejected", stage="verify", reason="verify request: not valid JSON", message_id="m-1"
    )
    text = message(rejected)["text"]
    assert "rejected" in text and "not valid JSON" in text and "m-1" in text
    assert rerun_commands(rejected) == [] and "re-run" not in text
    assert group_of(rejected) == "rejected-requests"  # requests without a run share the digest


def test_alerts_go_out_for_problem_statuses_only(webhook: Webhook) -> None:
    config = config_for(webhook.url)
    limiter, outbox = ProcessRateLimiter(), MemoryOutbox()
    in_sync = VerifyResult(status="in_sync", run_id="r0", destination="box")
    assert alert(in_sync, config, limiter=limiter, outbox=outbox) is False
    for n, status in enumerate(("mismatch", "incomplete", "rejected", "failed")):
        problem = VerifyResult(status=status, run_id=f"r{n + 1}", destination="box")
        assert alert(problem, config, limiter=limiter, outbox=outbox) is True
    assert [b["text"].split("*")[1].rsplit(" ", 1)[1] for b in webhook.bodies] == [
        "mismatch",
        "incomplete",
        "rejected",
        "failed",
    ]


def test_rate_limited_per_run_and_nothing_dropped(webhook: Webhook) -> None:
    config = config_for(webhook.url, min_interval_s=60)
    limiter, outbox = ProcessRateLimiter(), MemoryOutbox()
    assert alert(MISMATCH, config, limiter=limiter, outbox=outbox, now=1000.0)
    assert not alert(MISMATCH, config, limiter=limiter, outbox=outbox, now=1030.0)  # within a minute: queued
    to_box = variant(destination="box")
    assert not alert(to_box, config, limiter=limiter, outbox=outbox, now=1031.0)  # same run: queued with it
    other_run = variant(run_id="r20250108b")
    assert alert(other_run, config, limiter=limiter, outbox=outbox, now=1032.0)  # another run has its own limit
    assert len(webhook.bodies) == 2
    assert flush_all(config, limiter=ProcessRateLimiter(), outbox=outbox) == 1  # the sweep sends what was held
    held = webhook.bodies[-1]["text"]
    assert "`r20250108a`" in held and "2 mismatch" in held  # one message, every destination of the run
    assert "`sftp:local`" in held and "`box`" in held and "sales.orders" in held
    assert outbox.groups() == []


def test_one_run_one_message_listing_every_table_and_destination(webhook: Webhook) -> None:
    config = config_for(webhook.url)
    limiter, outbox = ProcessRateLimiter(), MemoryOutbox()
    first = variant(status="failed", reason="box: 403", destination="box")
    assert alert(first, config, limiter=limiter, outbox=outbox, now=10.0)
    for table in ("customers", "orders", "products"):
        source = {"mode": "table", "project": "p", "dataset": "sales", "table": table}
        late = variant(status="failed", reason="box: 403", destination="box", source=source)
        alert(late, config, limiter=limiter, outbox=outbox, now=20.0)
    assert len(webhook.bodies) == 1
    flush_all(config, limiter=ProcessRateLimiter(), outbox=outbox)
    text = webhook.bodies[-1]["text"]
    assert all(f"sales.{t}" in text for t in ("customers", "orders", "products")) and "3 failed" in text


def test_rejected_requests_become_a_digest(webhook: Webhook) -> None:
    config = config_for(webhook.url)
    limiter, outbox = ProcessRateLimiter(), MemoryOutbox()
    sent = [
        alert(
            VerifyResult(
                status="rejected", stage="fan_out", reason=f"export request.dataset: bad {n}", message_id=f"m{n}"
            ),
            config,
            limiter=limiter,
            outbox=outbox,
            now=100.0 + n,
        )
        for n in range(29)
    ]
    assert sent.count(True) == 1  # the first one at once, the rest held for the digest
    assert flush_all(config, limiter=ProcessRateLimiter(), outbox=outbox) == 1
    digest = webhook.bodies[-1]["text"]
    assert "28 rejected requests" in digest and "[m28]" in digest and "bad 28" in digest
    assert sum("rejected" in line for line in digest.splitlines()[1:]) == 28  # none dropped


def test_a_failing_webhook_is_logged_not_raised_and_not_retried_forever(webhook: Webhook) -> None:
    webhook.status = 500
    stream = io.StringIO()
    log.configure("json", stream=stream)
    outbox = MemoryOutbox()
    try:
        assert alert(MISMATCH, config_for(webhook.url), limiter=ProcessRateLimiter(), outbox=outbox) is False
    finally:
        log.configure()
    assert len(webhook.bodies) == 2  # one retry, then give up
    logged = stream.getvalue()
    assert "could not send alert" in logged and "secret-token-123" not in logged
    assert outbox.groups() == ["r20250108a"]  # kept for the next try
    webhook.status = 200
    assert flush_all(config_for(webhook.url), limiter=ProcessRateLimiter(), outbox=outbox) == 1


def test_an_unreachable_webhook_does_not_raise() -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    assert alert(MISMATCH, config_for(url), limiter=ProcessRateLimiter(), outbox=MemoryOutbox()) is False


def test_no_webhook_configured_means_no_alert() -> None:
    outbox = MemoryOutbox()
    assert alert(MISMATCH, config_for(None), limiter=ProcessRateLimiter(), outbox=outbox) is False
    assert outbox.groups() == []
