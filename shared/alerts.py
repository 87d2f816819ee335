"""Slack alerts for results that need a person: mismatch, incomplete, rejected, failed.

- Posted to ``alerts.slack_webhook_url`` (a Secret; alerts are off without it) as a Slack
  incoming-webhook message: run, source, destination, what is wrong, and the commands that
  re-run the check.
- Rate-limited: at most one alert per (run, destination, status) per ``alerts.min_interval_s``,
  across function instances, with a small GCS object per key (``alerts/…``) updated under a
  generation precondition; if GCS cannot be reached the limit falls back to this process.
- Never blocks the pipeline: a short timeout, two attempts at most, and every failure is
  logged and swallowed (:func:`alert` never raises).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Protocol

import requests

from shared import log
from shared.config import Config
from shared.errors import TransientError
from shared.messages import VerifyResult
from shared.retry import retry_call

ALERT_STATUSES = frozenset({"mismatch", "incomplete", "rejected", "failed"})
TIMEOUT_S = (3.0, 5.0)  # connect, read
ATTEMPTS = 2
ALERTS_PREFIX = "alerts/"
MAX_NAMES = 10
ICONS = {"mismatch": ":x:", "incomplete": ":hourglass:", "rejected": ":no_entry:", "failed": ":rotating_light:"}

logger = log.get_logger(__name__)


class RateLimiter(Protocol):
    def allow(self, key: str, interval_s: float, now: float) -> bool:
        """True (and remember ``now``) when no alert for ``key`` was sent in the last ``interval_s``."""
        ...


class ProcessRateLimiter:
    """Per-process memory of the last alert per key (tests, and the fallback when GCS is down)."""

    def __init__(self) -> None:
        self._sent: dict[str, float] = {}
        self._lock = threading.Lock()

    def allow(self, key: str, interval_s: float, now: float) -> bool:
        with self._lock:
            last = self._sent.get(key)
            if last is not None and now - last < interval_s:
                return False
            self._sent[key] = now
            return True


class GcsRateLimiter:
    """The last alert time per key in ``gs://BUCKET/alerts/KEY.json``, shared by every instance.

    Read the object (its time and generation); when old enough, write the new time with
    ``if_generation_match`` of what was read (0 when absent): of two instances racing, one wins.
    """

    def __init__(self, bucket: str, fallback: RateLimiter | None = None) -> None:
        self.bucket = bucket
        self.fallback = fallback or _PROCESS_LIMITER

    def allow(self, key: str, interval_s: float, now: float) -> bool:
        from google.api_core import exceptions as gexc

        from shared.gcp import gcs

        name = ALERTS_PREFIX + key + ".json"
        try:
            info = gcs.stat(self.bucket, name)
            if info is not None:
                body = gcs.read_json(self.bucket, name) or {}
                if now - float(body.get("sent_at", 0)) < interval_s:
                    return False
            data = json.dumps({"sent_at": now, "key": key}).encode()
            gcs.write(self.bucket, name, data, "application/json", if_generation_match=info.generation if info else 0)
            return True
        except gexc.PreconditionFailed:
            return False  # another instance sent it just now
        except Exception as exc:  # noqa: BLE001 - the limiter must never stop an alert path
            logger.warning("alert rate limit: GCS unavailable, limiting per process", error=str(exc))
            return self.fallback.allow(key, interval_s, now)


_PROCESS_LIMITER = ProcessRateLimiter()


def alert(
    result: VerifyResult, config: Config, *, limiter: RateLimiter | None = None, now: float | None = None
) -> bool:
    """Post ``result`` to Slack when its status needs a person; True when a message was sent.

    Never raises: failures are logged (alerts must not turn a result into a retry storm).
    """
    if result.status not in ALERT_STATUSES:
        return False
    secret = config.alerts.slack_webhook_url
    if secret is None:
        logger.info("alerts are off (alerts.slack_webhook_url is not set)", status=result.status)
        return False
    try:
        key = rate_key(result)
        limiter = limiter or GcsRateLimiter(config.bucket)
        if not limiter.allow(key, config.alerts.min_interval_s, time.time() if now is None else now):
            logger.info("alert suppressed by rate limit", key=key, min_interval_s=config.alerts.min_interval_s)
            return False
        post(secret.reveal(), message(result))
    except Exception as exc:  # noqa: BLE001 - see docstring
        logger.error("could not send alert", status=result.status, run_id=result.run_id, error=_safe(exc))
        return False
    logger.info("alert sent", status=result.status, run_id=result.run_id, destination=result.destination)
    return True


def rate_key(result: VerifyResult) -> str:
    """``{run}/{destination}/{status}`` with '-' for unknown parts (all rejects without a run share one)."""
    parts = [result.run_id or "-", (result.destination or "-").replace(":", "_"), result.status]
    return "/".join(parts)


def post(url: str, payload: dict[str, Any]) -> None:
    """POST to the webhook: short timeout, one retry on 429/5xx/connection errors."""

    def once() -> None:
        try:
            response = requests.post(url, json=payload, timeout=TIMEOUT_S)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientError(f"webhook: {exc.__class__.__name__}") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(f"webhook answered {response.status_code}")
        if response.status_code >= 400:
            raise RuntimeError(f"webhook answered {response.status_code}: {response.text[:200]}")

    retry_call(once, "slack webhook", attempts=ATTEMPTS, initial_s=0.5, max_wait_s=2.0, deadline_s=10.0)


def _safe(exc: Exception) -> str:
    """An error text without URLs (the webhook URL is a secret)."""
    text = str(exc)
    return "webhook request failed: " + exc.__class__.__name__ if "http" in text.lower() else text


def rerun_commands(result: VerifyResult) -> list[str]:
    """The commands that run the check again for this result (none without a run id)."""
    if not result.run_id:
        return []
    request: dict[str, str] = {"run_id": result.run_id}
    cli = f"offsite verify {result.run_id}"
    if result.destination:
        request["destination"] = result.destination
        cli += f" --destination {result.destination}"
    body = json.dumps(request, separators=(",", ":"))
    return [cli, f"gcloud pubsub topics publish verify-requests --message='{body}'"]


def message(result: VerifyResult) -> dict[str, Any]:
    """The Slack message (``text`` in Slack's mrkdwn)."""
    label = result.source.label if result.source else None
    head = f"{ICONS.get(result.status, ':warning:')} *offsite {result.stage or 'verify'}: {result.status}*"
    where = []
    if result.run_id:
        where.append(f"run `{result.run_id}`")
    if label:
        where.append(label + (f" ({result.date})" if result.date else ""))
    if result.destination:
        where.append(f"→ `{result.destination}`")
    lines = [head + (" — " + " ".join(where) if where else "")]
    for title, names in (
        ("missing", result.missing),
        ("extra", result.extra),
        ("size differs", result.size_differs),
        ("hash differs", result.hash_differs),
    ):
        if names:
            shown = ", ".join(names[:MAX_NAMES]) + (f" … (+{len(names) - MAX_NAMES})" if len(names) > MAX_NAMES else "")
            lines.append(f"{title} ({len(names)}): {shown}")
    if result.check:
        lines.append(
            f"check: {result.check} · files {result.files_present}/{result.files_expected}"
            f" · bytes {result.bytes_present}/{result.bytes_expected} · self-heal attempts: {result.heal_attempts}"
        )
    if result.reason:
        lines.append(f"reason: {result.reason[:1500]}")
    if result.message_id:
        lines.append(f"message: {result.message_id}")
    commands = rerun_commands(result)
    if commands:
        lines.append("re-run: `" + commands[0] + "`")
        lines.append("    or: `" + commands[1] + "`")
    return {"text": "\n".join(lines)}
