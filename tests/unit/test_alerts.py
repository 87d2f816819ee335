"""Slack alerts against a real local webhook server: content, statuses, aggregation per run,
rate limit without loss, never blocking."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import threading
import time
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


def test_a_message_that_could_not_be_posted_does_not_hold_back_the_next_try(webhook: Webhook) -> None:
    """The rate limit's slot is taken before the post; a failed post gives it back, so the run's
    next result (or the sweep) sends at once instead of after ``min_interval_s``."""
    config, limiter, outbox = config_for(webhook.url, min_interval_s=600), ProcessRateLimiter(), MemoryOutbox()
    webhook.status = 503
    assert alert(MISMATCH, config, limiter=limiter, outbox=outbox, now=1000.0) is False
    webhook.status = 200
    assert alert(variant(destination="box"), config, limiter=limiter, outbox=outbox, now=1001.0) is True
    assert "2 mismatch" in webhook.bodies[-1]["text"] and outbox.groups() == []
    # a message that did go out keeps its slot
    assert alert(variant(destination="drive:x"), config, limiter=limiter, outbox=outbox, now=1002.0) is False


def test_the_shared_rate_limit_gives_back_only_its_own_slot(bare_stack_env: Any) -> None:
    """GcsRateLimiter (the limit shared by every instance, in the state bucket): a released slot
    is free again at once; a record another instance wrote since is kept."""
    import uuid

    from shared.gcp import clients
    from shared.reporting.alerts import GcsRateLimiter

    bucket = f"alerts-{uuid.uuid4().hex[:8]}"
    clients.storage_client().create_bucket(bucket)
    limiter, group = GcsRateLimiter(bucket, fallback=ProcessRateLimiter()), "r-released"
    assert limiter.allow(group, 600, 1000.0)
    assert not limiter.allow(group, 600, 1001.0)
    limiter.release(group, 1000.0)
    assert limiter.allow(group, 600, 1002.0)  # free again at once
    limiter.release(group, 1000.0)  # not the record's time (1002): another send's, kept
    assert not limiter.allow(group, 600, 1003.0)


def test_an_unreachable_webhook_does_not_raise() -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    assert alert(MISMATCH, config_for(url), limiter=ProcessRateLimiter(), outbox=MemoryOutbox()) is False


def test_no_webhook_configured_means_no_alert() -> None:
    outbox = MemoryOutbox()
    assert alert(MISMATCH, config_for(None), limiter=ProcessRateLimiter(), outbox=outbox) is False
    assert outbox.groups() == []


def failed_object(name: str) -> VerifyResult:
    """A mirrored bucket's failed object: its source has no table or export."""
    return VerifyResult(
        status="failed",
        destination="box",
        run_id="mirror-bqx-ml-models",
        source={"mode": "bucket", "bucket": "bqx-ml-models"},
        stage="upload_box",
        reason=f"box: gs://bqx-ml-models/{name}: upload refused (403 access_denied)",
    )


def test_failures_of_a_source_without_table_are_queued_apart(webhook: Webhook) -> None:
    config = config_for(webhook.url, min_interval_s=60)
    limiter, outbox = ProcessRateLimiter(), MemoryOutbox()
    names = ["models/a.bin", "models/b.bin", "models/c.bin"]
    for i, name in enumerate(names):
        alert(failed_object(name), config, limiter=limiter, outbox=outbox, now=1000.0 + i)
    alert(failed_object(names[-1]), config, limiter=limiter, outbox=outbox, now=1010.0)  # reported twice: one line
    assert len(outbox.pending("mirror-bqx-ml-models")) == 2  # b and c wait for the sweep
    flush_all(config, limiter=ProcessRateLimiter(), outbox=outbox)
    texts = "\n".join(body["text"] for body in webhook.bodies)
    assert [name for name in names if name not in texts] == []


class SilentWebhook:
    """A webhook that accepts connections and never answers (a Slack incident, a stuck proxy)."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.accepted: list[socket.socket] = []
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/hook/secret-token-123"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                self.accepted.append(self.server.accept()[0])

    def close(self) -> None:
        self.server.close()
        for conn in self.accepted:
            conn.close()


def queued_runs(outbox: MemoryOutbox, count: int) -> None:
    for n in range(count):
        run = variant(run_id=f"r2025010{n}x")
        outbox.add(group_of(run), "orders-sftp_local-mismatch", run)


def test_flush_all_stops_at_the_first_transient_failure() -> None:
    hook, outbox = SilentWebhook(), MemoryOutbox()
    queued_runs(outbox, 3)
    try:
        assert flush_all(config_for(hook.url), limiter=ProcessRateLimiter(), outbox=outbox) == 0
    finally:
        hook.close()
    assert len(hook.accepted) == 2  # the first group's two attempts; the others wait for the next sweep
    assert len(outbox.groups()) == 3


def test_flush_all_stops_when_the_webhook_itself_is_refused(webhook: Webhook) -> None:
    """A revoked webhook (404 no_service) or an archived channel (410) refuses every message:
    trying each queued group, sweep after sweep, spent the sweep's time (and retention's) on
    nothing, and the queue only grows while it lasts."""
    config, outbox = config_for(webhook.url), MemoryOutbox()
    queued_runs(outbox, 3)
    for status in (401, 403, 404, 410):
        webhook.status, before = status, len(webhook.bodies)
        assert flush_all(config, limiter=ProcessRateLimiter(), outbox=outbox) == 0
        assert len(webhook.bodies) == before + 1  # not retried; the other groups wait for the next sweep
    assert len(outbox.groups()) == 3
    webhook.status = 400  # one message refused (invalid_payload): the other groups are still tried
    assert flush_all(config, limiter=ProcessRateLimiter(), outbox=outbox) == 0
    assert len(webhook.bodies) == 4 + 3
    webhook.status = 200
    assert flush_all(config, limiter=ProcessRateLimiter(), outbox=outbox) == 3
    assert outbox.groups() == []


def test_flush_all_starts_no_group_past_its_budget(webhook: Webhook) -> None:
    outbox = MemoryOutbox()
    queued_runs(outbox, 2)
    long_ago = time.monotonic() - 600.0  # the sweep started 10 minutes ago
    assert flush_all(config_for(webhook.url), limiter=ProcessRateLimiter(), outbox=outbox, started=long_ago) == 0
    assert webhook.bodies == [] and len(outbox.groups()) == 2
    assert flush_all(config_for(webhook.url), limiter=ProcessRateLimiter(), outbox=outbox) == 2


def test_a_webhook_url_quoted_without_http_is_not_logged() -> None:
    secret = "htps://hooks.slack.com/services/T0AAAA/B0BBBB/XoXoSECRETtoken"  # scheme mistyped
    stream = io.StringIO()
    log.configure("json", stream=stream)
    try:
        assert alert(MISMATCH, config_for(secret), limiter=ProcessRateLimiter(), outbox=MemoryOutbox()) is False
    finally:
        log.configure()
    logged = stream.getvalue()
    assert "could not send alert" in logged and "InvalidSchema" in logged
    assert "XoXoSECRETtoken" not in logged and "hooks.slack.com" not in logged
