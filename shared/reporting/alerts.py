"""Slack alerts for results that need a person: mismatch, incomplete, rejected, failed.

- Posted to ``alerts.slack_webhook_url`` (a Secret; alerts are off without it) as a Slack
  incoming-webhook message: run, source, destination, what is wrong, and the commands that
  re-run the check (:mod:`shared.reporting.alert_messages`).
- Aggregated per run: every alertable result is queued in its run's group
  (:mod:`shared.reporting.alert_outbox`; rejected requests without a run share one digest
  group), and a group is sent as ONE message listing every table, destination and status,
  at most once per ``alerts.min_interval_s`` across instances (a small GCS object per group
  under ``alerts/``, updated under a generation precondition; if GCS cannot be reached the
  limit and the queue fall back to this process; a message that could not be posted gives its
  slot back, so the next try is not held back). What the limit holds back stays queued
  and goes out with the group's next message or the verify sweep's :func:`flush_all` —
  nothing is dropped silently.
- Never blocks the pipeline: a short timeout, two attempts at most, and every failure is
  logged and swallowed (:func:`alert` never raises); unsent entries stay queued.
  :func:`flush_all` starts no group past its stop time and ends at the first transient
  webhook failure or refusal of the webhook itself (401, 403, 404, 410: revoked, channel
  archived — every group would fail the same way), so a hanging or revoked Slack webhook cannot
  eat the sweep's (and retention's) time, however many groups it leaves queued.
- The webhook URL is a secret: an error is logged with the URL and its path replaced by ``***``.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import requests

from shared import log
from shared.budgeted_pass import stop_time
from shared.config import Config
from shared.errors import PermanentError, TransientError
from shared.messages import VerifyResult
from shared.reporting.alert_messages import summary_message
from shared.reporting.alert_outbox import GcsOutbox, MemoryOutbox, Outbox, group_of, key_of
from shared.retry import invocation_ends, retry_call
from shared.topology import VERIFY_TIMEOUT_S

TIMEOUT_S = (3.0, 5.0)  # connect, read
ATTEMPTS = 2
ALERTS_PREFIX = "alerts/"
# from the sweep's start: after the recheck's budget (420 s), before retention's last removal (480 s)
FLUSH_BUDGET_S = VERIFY_TIMEOUT_S - 90.0
Flushed = Literal["sent", "idle", "failed", "unreachable", "refused"]
REFUSED = frozenset({401, 403, 404, 410})  # about the webhook (revoked, no channel), not one message

logger = log.get_logger(__name__)


class RateLimiter(Protocol):
    def allow(self, key: str, interval_s: float, now: float) -> bool:
        """True (and remember ``now``) when no alert for ``key`` was sent in the last ``interval_s``."""
        ...

    def release(self, key: str, now: float) -> None:
        """Give back the slot ``allow`` took at ``now``: its message was not sent, so the next
        try need not wait out the interval. Never raises."""
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

    def release(self, key: str, now: float) -> None:
        with self._lock:
            if self._sent.get(key) == now:  # an earlier send is older than the interval: forget it too
                del self._sent[key]


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

    def release(self, key: str, now: float) -> None:
        """Delete the group's record if it is still the one ``allow`` wrote at ``now`` (generation
        match: a later send by another instance is kept)."""
        from shared.gcp import gcs

        name = ALERTS_PREFIX + key + ".json"
        self.fallback.release(key, now)
        try:
            found = gcs.read_with_generation(self.bucket, name)
            if found is not None and json.loads(found[0]).get("sent_at") == now:
                gcs.delete(self.bucket, name, if_generation_match=found[1])
        except Exception as exc:  # noqa: BLE001 - the slot then runs out by itself (min_interval_s)
            logger.warning("alert rate limit: could not give back the slot", group=key, error=str(exc))


_PROCESS_LIMITER = ProcessRateLimiter()


def alert(
    result: VerifyResult,
    config: Config,
    *,
    limiter: RateLimiter | None = None,
    outbox: Outbox | None = None,
    now: float | None = None,
) -> bool:
    """Queue ``result`` in its run's group when its status needs a person, then send the group
    if the rate limit allows; True when a message went out now. Never raises."""
    if not result.status.is_final_failure:
        return False
    if config.alerts.slack_webhook_url is None:
        logger.info("alerts are off (alerts.slack_webhook_url is not set)", status=result.status)
        return False
    outbox = outbox or _outbox(config)
    group = group_of(result)
    try:
        outbox.add(group, key_of(result), result)
    except Exception as exc:  # noqa: BLE001 - GCS unreachable: queue in this process instead
        logger.warning("alert queue: GCS unavailable, queueing in this process", error=str(exc))
        outbox = _PROCESS_OUTBOX
        outbox.add(group, key_of(result), result)
    return flush(group, config, limiter=limiter, outbox=outbox, now=now)


def flush(
    group: str,
    config: Config,
    *,
    limiter: RateLimiter | None = None,
    outbox: Outbox | None = None,
    now: float | None = None,
) -> bool:
    """Send everything queued in ``group`` as one message, if the group's rate limit allows."""
    return _flush(group, config, limiter=limiter, outbox=outbox, now=now) == "sent"


def _flush(
    group: str, config: Config, *, limiter: RateLimiter | None, outbox: Outbox | None, now: float | None = None
) -> Flushed:
    """:func:`flush`, telling a failure that may pass (``unreachable``: 429, 5xx, timeouts) and a
    refusal of the webhook itself (``refused``) from others."""
    secret = config.alerts.slack_webhook_url
    if secret is None:
        return "idle"
    outbox = outbox or _outbox(config)
    try:
        queued = outbox.pending(group)
        if not queued:
            return "idle"
        limiter = limiter or GcsRateLimiter(config.state_bucket_name)
        at = time.time() if now is None else now
        if not limiter.allow(group, config.alerts.min_interval_s, at):
            logger.info("alert held back by the rate limit; queued", group=group, queued=len(queued))
            return "idle"
        try:
            post(secret.reveal(), summary_message([p.result for p in queued]))
        except Exception:
            limiter.release(group, at)  # nothing went out: the next try need not wait the interval
            raise
        outbox.remove(group, queued)
    except Exception as exc:  # noqa: BLE001 - see module docstring
        logger.error("could not send alert; kept queued", group=group, error=_safe(exc, secret.reveal()))
        return "unreachable" if isinstance(exc, TransientError) else "refused" if isinstance(exc, Refused) else "failed"
    logger.info("alert sent", group=group, results=len(queued), statuses=sorted({p.result.status for p in queued}))
    return "sent"


def flush_all(
    config: Config,
    *,
    limiter: RateLimiter | None = None,
    outbox: Outbox | None = None,
    started: float | None = None,
    budget_s: float = FLUSH_BUDGET_S,
) -> int:
    """Send every group the rate limit allows (the verify sweep calls this); how many went out.

    No group starts ``budget_s`` after ``started`` (``time.monotonic()``, default now) or past
    the invocation's end, and the first transient failure (the webhook hangs or answers 5xx) or
    refusal (:data:`REFUSED`) ends the pass: what is left stays queued for the next sweep."""
    stop_at = stop_time(started, budget_s)
    ends = invocation_ends()
    stop_at = stop_at if ends is None else min(stop_at, ends)
    outbox = outbox or _outbox(config)
    try:
        groups = outbox.groups()
    except Exception as exc:  # noqa: BLE001 - the next sweep tries again
        logger.error("could not list queued alerts", error=str(exc))
        return 0
    sent = 0
    for done, group in enumerate(groups):
        if time.monotonic() >= stop_at:
            logger.warning("out of time sending queued alerts; the rest stay queued", left=len(groups) - done)
            break
        flushed = _flush(group, config, limiter=limiter, outbox=outbox)
        sent += flushed == "sent"
        if flushed in ("unreachable", "refused"):
            logger.warning(
                f"webhook {flushed}; the other queued alerts wait for the next sweep", left=len(groups) - done - 1
            )
            break
    return sent


def _outbox(config: Config) -> Outbox:
    return GcsOutbox(config.state_bucket_name)


_PROCESS_OUTBOX = MemoryOutbox()


def post(url: str, payload: dict[str, Any]) -> None:
    """POST to the webhook: short timeout, one retry on 429/5xx/connection errors."""

    def once() -> None:
        try:
            response = requests.post(url, json=payload, timeout=TIMEOUT_S)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientError(f"webhook: {exc.__class__.__name__}") from None
        except requests.RequestException as exc:  # a bad URL (InvalidSchema...): its text quotes the secret
            raise RuntimeError(f"webhook: {exc.__class__.__name__} (check alerts.slack_webhook_url)") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(f"webhook answered {response.status_code}")
        if response.status_code in REFUSED:
            raise Refused(f"webhook refused ({response.status_code}: {response.text[:200]})")
        if response.status_code >= 400:
            raise RuntimeError(f"webhook answered {response.status_code}: {response.text[:200]}")

    retry_call(once, "slack webhook", attempts=ATTEMPTS, initial_s=0.5, max_wait_s=2.0, deadline_s=10.0)


class Refused(PermanentError):
    """The webhook itself is refused (:data:`REFUSED`): every message to it would fail alike."""


def _safe(exc: Exception, webhook_url: str) -> str:
    """An error text without the webhook URL (a secret) or its path, and without any other URL."""
    text = str(exc)
    for secret in _secret_forms(webhook_url):
        text = text.replace(secret, "***")
    return "webhook request failed: " + exc.__class__.__name__ if "http" in text.lower() else text


def _secret_forms(url: str) -> list[str]:
    """How an error may quote ``url``: whole, without its scheme, its path (with the query), longest first."""
    parts = urlsplit(url)
    path_query = parts.path + ("?" + parts.query if parts.query else "")
    forms = {url, url.partition("://")[2], path_query, parts.path, parts.query}
    return sorted((f for f in forms if len(f) > 1), key=len, reverse=True)
