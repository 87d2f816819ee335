"""Pub/Sub down for one topic, at the Google client: every publish to it fails with 503
ServiceUnavailable (what the client raises while Pub/Sub is unavailable) until :meth:`end`;
the first ``allow`` ones still go through. shared.gcp.pubsub retries as in production."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from shared.gcp import clients


class PublishOutage:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, topic: str, *, allow: int = 0) -> None:
        self.allow = allow
        self.down = True
        self.refused = 0
        client = clients.publisher_client()
        real = client.publish

        def publish(path: str, data: bytes, **attributes: Any) -> Any:
            if not self.down or not path.endswith(f"/topics/{topic}"):
                return real(path, data, **attributes)
            if self.allow > 0:
                self.allow -= 1
                return real(path, data, **attributes)
            self.refused += 1
            failed: Future[str] = Future()
            failed.set_exception(gexc.ServiceUnavailable(f"{path}: the service is currently unavailable"))
            return failed

        monkeypatch.setattr(client, "publish", publish)

    def end(self) -> None:
        self.down = False
