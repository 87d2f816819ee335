"""A stalled call on the Pub/Sub emulator: PUT and GET are idempotent and tried again, a publish
is not (a second one could publish twice)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from devstack import pubsub_admin
from devstack.errors import StackError
from devstack.ports import free_port


class _StallsFirst(BaseHTTPRequestHandler):
    calls: list[str] = []

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        type(self).calls.append(f"{self.command} {self.path}")
        if len(self.calls) == 1:
            time.sleep(1.5)  # longer than the client's timeout: this call stalls
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"messageIds": ["1"]}')

    do_PUT = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stalling_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[pubsub_admin.PubSubAdmin]:
    monkeypatch.setattr(pubsub_admin, "CALL_TIMEOUT_S", 0.5)
    _StallsFirst.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _StallsFirst)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield pubsub_admin.PubSubAdmin(f"127.0.0.1:{server.server_address[1]}", "p")
    server.shutdown()


def test_a_stalled_create_is_tried_again(stalling_emulator: pubsub_admin.PubSubAdmin) -> None:
    stalling_emulator.create_topic("t")
    assert _StallsFirst.calls == ["PUT /v1/projects/p/topics/t"] * 2


def test_a_stalled_publish_is_reported_not_repeated(stalling_emulator: pubsub_admin.PubSubAdmin) -> None:
    with pytest.raises(StackError, match="unreachable: timed out"):
        stalling_emulator.publish("t", b"x")
    assert _StallsFirst.calls == ["POST /v1/projects/p/topics/t:publish"]
