"""Topics and subscriptions on the Pub/Sub emulator, over its REST API (no client import cost).

The emulator speaks the same JSON API as pubsub.googleapis.com (that is what gcloud uses
through ``CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB``). Creation is idempotent: 409 means
"already there".
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from devstack.errors import StackError
from shared.errors import TransientError
from shared.retry import retry_call

CALL_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class PushRetry:
    minimum_backoff_s: int
    maximum_backoff_s: int
    max_delivery_attempts: int


class PubSubAdmin:
    def __init__(self, host: str, project: str) -> None:
        self.base = f"http://{host}/v1/projects/{project}"
        self.project = project

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, *, ok_conflict: bool = False) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.base}/{path}", data=data, method=method)
        req.add_header("content-type", "application/json")

        def send() -> bytes:
            try:
                with urllib.request.urlopen(req, timeout=CALL_TIMEOUT_S) as resp:
                    return resp.read()
            except urllib.error.HTTPError:
                raise
            except OSError as exc:
                # a busy emulator (JIT warm-up on loaded cores) can stall one call; PUT and GET
                # are idempotent, so they are tried again, a publish or pull is not
                timed_out = isinstance(exc, TimeoutError) or isinstance(getattr(exc, "reason", None), TimeoutError)
                if timed_out and method in ("PUT", "GET"):
                    raise TransientError(f"{method} {path} timed out after {CALL_TIMEOUT_S:.0f} s") from exc
                raise

        try:
            text = retry_call(send, f"pubsub emulator {method} {path}", attempts=3)
        except urllib.error.HTTPError as exc:  # before OSError, of which it is a kind
            if exc.code == 409 and ok_conflict:
                return {}
            detail = exc.read().decode("utf-8", "replace")[:300]
            raise StackError(
                f"pubsub emulator: {method} {path} answered {exc.code}: {detail}", "see the pubsub log"
            ) from None
        except (TransientError, OSError) as exc:
            raise StackError(
                f"pubsub emulator at {self.base} unreachable: {exc}", "check `offsite dev status`"
            ) from None
        return json.loads(text) if text.strip() else {}

    def topic_path(self, topic: str) -> str:
        return f"projects/{self.project}/topics/{topic}"

    def create_topic(self, topic: str) -> None:
        self._call("PUT", f"topics/{topic}", {}, ok_conflict=True)

    def create_subscription(
        self,
        name: str,
        topic: str,
        *,
        push_endpoint: str | None = None,
        retry: PushRetry | None = None,
        dead_letter_topic: str | None = None,
        ack_deadline_s: int = 60,
        retry_policy: bool = True,
    ) -> None:
        """Create (or keep) a subscription; ``retry_policy=False`` keeps only the dead-letter part of ``retry``."""
        body: dict[str, Any] = {"topic": self.topic_path(topic), "ackDeadlineSeconds": ack_deadline_s}
        if push_endpoint:
            body["pushConfig"] = {"pushEndpoint": push_endpoint}
        if retry and not retry_policy:
            if dead_letter_topic:
                body["deadLetterPolicy"] = {
                    "deadLetterTopic": self.topic_path(dead_letter_topic),
                    "maxDeliveryAttempts": retry.max_delivery_attempts,
                }
        elif retry:
            body["retryPolicy"] = {
                "minimumBackoff": f"{retry.minimum_backoff_s}s",
                "maximumBackoff": f"{retry.maximum_backoff_s}s",
            }
            if dead_letter_topic:
                body["deadLetterPolicy"] = {
                    "deadLetterTopic": self.topic_path(dead_letter_topic),
                    "maxDeliveryAttempts": retry.max_delivery_attempts,
                }
        self._call("PUT", f"subscriptions/{name}", body, ok_conflict=True)

    def publish(self, topic: str, data: bytes, **attributes: str) -> str:
        msg: dict[str, Any] = {"data": base64.b64encode(data).decode()}
        if attributes:
            msg["attributes"] = attributes
        return self._call("POST", f"topics/{topic}:publish", {"messages": [msg]})["messageIds"][0]

    def pull(self, subscription: str, max_messages: int = 10, *, ack: bool = True) -> list[dict[str, Any]]:
        """Messages waiting on a pull subscription (data base64-decoded into ``data_bytes``)."""
        got = self._call(
            "POST", f"subscriptions/{subscription}:pull", {"maxMessages": max_messages, "returnImmediately": True}
        )
        received = got.get("receivedMessages", [])
        if ack and received:
            self._call("POST", f"subscriptions/{subscription}:acknowledge", {"ackIds": [m["ackId"] for m in received]})
        out = []
        for item in received:
            msg = dict(item["message"])
            msg["data_bytes"] = base64.b64decode(msg.get("data", ""))
            out.append(msg)
        return out

    def subscriptions(self) -> list[dict[str, Any]]:
        return self._call("GET", "subscriptions").get("subscriptions", [])
