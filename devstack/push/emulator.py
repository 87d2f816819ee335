"""The REST calls the dispatcher makes on the Pub/Sub emulator (same JSON API as the cloud)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

CALL_TIMEOUT_S = 30.0


class EmulatorError(Exception):
    """A call on the emulator failed (unreachable, or a non-2xx answer)."""


class Emulator:
    """Pull, acknowledge, modify ack deadlines and publish on one project of the emulator."""

    def __init__(self, host: str, project: str) -> None:
        self.base = f"http://{host}/v1/projects/{project}"
        self.project = project

    def call(self, path: str, body: dict[str, Any], timeout_s: float = CALL_TIMEOUT_S) -> dict[str, Any]:
        """POST ``body`` to ``<base>/<path>``; the decoded answer."""
        req = urllib.request.Request(f"{self.base}/{path}", data=json.dumps(body).encode(), method="POST")
        req.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                text = resp.read()
        except urllib.error.HTTPError as exc:
            raise EmulatorError(f"{path}: {exc.code} {exc.read()[:200]!r}") from None
        except OSError as exc:
            raise EmulatorError(f"{path}: {exc}") from None
        return json.loads(text) if text.strip() else {}

    def pull(self, subscription: str, max_messages: int) -> list[dict[str, Any]]:
        """Up to ``max_messages`` received messages, at once (possibly none).

        Not a long poll (``returnImmediately=false``): the emulator keeps an open pull for about
        90 s even after its client is gone, and gives it messages no one will ever receive;
        they would wait out the whole ack deadline after a restart of the dispatcher.
        """
        body = {"maxMessages": max_messages, "returnImmediately": True}
        got = self.call(f"subscriptions/{subscription}:pull", body)
        return list(got.get("receivedMessages", []))

    def ack(self, subscription: str, ack_ids: list[str]) -> None:
        self.call(f"subscriptions/{subscription}:acknowledge", {"ackIds": ack_ids})

    def modify_ack_deadline(self, subscription: str, ack_ids: list[str], seconds: int) -> None:
        """Seconds until redelivery (0: at once, a nack); also extends a lease."""
        body = {"ackIds": ack_ids, "ackDeadlineSeconds": int(seconds)}
        self.call(f"subscriptions/{subscription}:modifyAckDeadline", body)

    def publish(self, topic: str, message: dict[str, Any]) -> str:
        """Publish one message (``data`` base64, ``attributes``); its new message id."""
        got = self.call(f"topics/{topic}:publish", {"messages": [message]})
        return str(got["messageIds"][0])
