"""One push request: the body Pub/Sub POSTs to a push endpoint, and how its answer is judged.

The body is the cloud's push format (``message`` with both spellings of the id and publish
time, ``subscription``, and ``deliveryAttempt`` because every local subscription has a
dead-letter policy). Posted to ``http://FUNCTION/projects/P/topics/T``, functions-framework turns
it into a ``google.cloud.pubsub.topic.v1.messagePublished`` CloudEvent with source
``//pubsub.googleapis.com/projects/P/topics/T``; posted to the relay's ``/to/<function>``, the
relay turns a GCS notification into the storage CloudEvent Eventarc sends.

A request to a function that is not listening (it died, the supervisor is restarting it) is
held, as Cloud Run holds a request until an instance can take it, and answered 429 only when
none could within :data:`QUEUE_S`; so a restart costs a wait, not delivery attempts.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

QUEUE_S = 60.0  # Cloud Run answers 429 when no instance took a request within this long
QUEUE_POLL_S = 0.25
ACK_STATUSES = frozenset({102, 200, 201, 202, 204})  # Pub/Sub push: every other status is a nack


class NoInstance(Exception):
    """Nothing listened at the function's address for :data:`QUEUE_S` (Cloud Run: 429)."""


def _refused(exc: OSError) -> bool:
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    return isinstance(reason, ConnectionRefusedError)


def open_queued(req: urllib.request.Request, timeout_s: float, queue_s: float = QUEUE_S) -> tuple[Any, float]:
    """``urlopen(req)``, held while the connection is refused (the function is starting), as
    Cloud Run queues a request for an instance; returns the response and the seconds held.
    NoInstance after ``queue_s``; every other error is urlopen's."""
    start, held = time.monotonic(), False
    while True:
        try:
            return urllib.request.urlopen(req, timeout=timeout_s), (time.monotonic() - start if held else 0.0)
        except urllib.error.HTTPError:
            raise
        except OSError as exc:
            if not _refused(exc):
                raise
            held = True
        if time.monotonic() - start >= queue_s:
            raise NoInstance(f"no instance took the request within {queue_s:.0f} s")
        time.sleep(QUEUE_POLL_S)


@dataclass(frozen=True)
class Outcome:
    """What one attempt gave: an HTTP status (None: no answer) and a short reason."""

    status: int | None
    note: str

    @property
    def acked(self) -> bool:
        """Pub/Sub push acknowledges on 102, 200, 201, 202 and 204 only (urllib never returns 102)."""
        return self.status in ACK_STATUSES


def push_body(project: str, subscription: str, received: dict[str, Any]) -> bytes:
    """The JSON body of a push request for one received message."""
    msg = received.get("message") or {}
    message = {
        "data": msg.get("data", ""),  # functions-framework needs the key, even when empty
        "attributes": msg.get("attributes") or {},
        "messageId": msg.get("messageId", ""),
        "message_id": msg.get("messageId", ""),
        "publishTime": msg.get("publishTime", ""),
        "publish_time": msg.get("publishTime", ""),
    }
    if msg.get("orderingKey"):
        message["orderingKey"] = msg["orderingKey"]
    body = {
        "message": message,
        "subscription": f"projects/{project}/subscriptions/{subscription}",
        "deliveryAttempt": int(received.get("deliveryAttempt") or 1),
    }
    return json.dumps(body).encode()


def post(url: str, body: bytes, timeout_s: float, queue_s: float = QUEUE_S) -> Outcome:
    """POST the push body; a timeout, a reset, or no instance within :data:`QUEUE_S` (429) is
    an attempt that failed."""
    req = urllib.request.Request(url, data=body, method="POST")
    req.add_header("content-type", "application/json")
    try:
        resp, held_s = open_queued(req, timeout_s, queue_s)
        with resp:
            resp.read()
            return Outcome(resp.status, f"ok, held {held_s:.1f} s for an instance" if held_s else "ok")
    except NoInstance as exc:
        return Outcome(429, str(exc))
    except urllib.error.HTTPError as exc:
        exc.read()
        return Outcome(exc.code, f"HTTP {exc.code}")
    except (TimeoutError, socket.timeout):
        return Outcome(None, f"no answer within the ack deadline ({timeout_s:.0f} s)")
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            return Outcome(None, f"no answer within the ack deadline ({timeout_s:.0f} s)")
        return Outcome(None, f"unreachable: {reason}")
    except OSError as exc:
        return Outcome(None, f"connection failed: {exc}")
