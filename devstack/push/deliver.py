"""One push request: the body Pub/Sub POSTs to a push endpoint, and how its answer is judged.

The body is the cloud's push format (``message`` with both spellings of the id and publish
time, ``subscription``, and ``deliveryAttempt`` because every local subscription has a
dead-letter policy). Posted to ``http://FUNCTION/projects/P/topics/T``, functions-framework turns
it into a ``google.cloud.pubsub.topic.v1.messagePublished`` CloudEvent with source
``//pubsub.googleapis.com/projects/P/topics/T``; posted to the relay's ``/to/<function>``, the
relay turns a GCS notification into the storage CloudEvent Eventarc sends.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Outcome:
    """What one attempt gave: an HTTP status (None: no answer) and a short reason."""

    status: int | None
    note: str

    @property
    def acked(self) -> bool:
        """Pub/Sub push acknowledges on any 2xx (102 too, which urllib never returns)."""
        return self.status is not None and 200 <= self.status < 300


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


def post(url: str, body: bytes, timeout_s: float) -> Outcome:
    """POST the push body; a timeout, a refused connection or a reset is an attempt that failed."""
    req = urllib.request.Request(url, data=body, method="POST")
    req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            resp.read()
            return Outcome(resp.status, "ok")
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
