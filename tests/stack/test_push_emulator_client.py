"""The dispatcher's emulator client: REST calls keep one connection per thread and survive losing
it; pulls (over gRPC) give each message exactly as the REST API does."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from devstack.pubsub_admin import PushRetry
from devstack.push.emulator import Emulator, EmulatorError
from devstack.state import StackInfo


class _Answers(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    status = 200
    close_after_answer = False
    connections: list[str] = []
    requests: list[str] = []

    def setup(self) -> None:
        super().setup()
        self.connections.append(f"{self.client_address}")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.requests.append(self.path)
        body = b'{"receivedMessages": []}' if self.status == 200 else b'{"error": "no"}'
        self.send_response(self.status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        # closed without a "connection: close", as a server ending an idle keep-alive does
        self.close_connection = self.close_after_answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[ThreadingHTTPServer, type[_Answers]]]:
    handler = type("Handler", (_Answers,), {"connections": [], "requests": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd, handler
    httpd.shutdown()
    httpd.server_close()


def test_calls_from_one_thread_share_one_connection(server: tuple[ThreadingHTTPServer, type[_Answers]]) -> None:
    httpd, handler = server
    emulator = Emulator(f"127.0.0.1:{httpd.server_address[1]}", "p")
    for _ in range(5):
        emulator.ack("s", ["a"])
    assert handler.requests == ["/v1/projects/p/subscriptions/s:acknowledge"] * 5
    assert len(handler.connections) == 1


def test_a_connection_the_server_closed_is_replaced_without_failing_the_call(
    server: tuple[ThreadingHTTPServer, type[_Answers]],
) -> None:
    httpd, handler = server
    handler.close_after_answer = True
    emulator = Emulator(f"127.0.0.1:{httpd.server_address[1]}", "p")
    for _ in range(3):
        emulator.modify_ack_deadline("s", ["a"], 10)
    assert len(handler.requests) == 3, "each call is answered once, none lost or sent twice"
    assert len(handler.connections) == 3


def test_a_non_2xx_answer_is_an_emulator_error_naming_the_call(
    server: tuple[ThreadingHTTPServer, type[_Answers]],
) -> None:
    httpd, handler = server
    handler.status = 500
    emulator = Emulator(f"127.0.0.1:{httpd.server_address[1]}", "p")
    with pytest.raises(EmulatorError, match=r"subscriptions/s:acknowledge: 500"):
        emulator.ack("s", ["a"])


def test_nothing_listening_is_an_emulator_error() -> None:
    emulator = Emulator("127.0.0.1:9", "p")
    with pytest.raises(EmulatorError, match="subscriptions/s:pull"):
        emulator.pull("s", 1)
    with pytest.raises(EmulatorError, match="subscriptions/s:acknowledge"):
        emulator.ack("s", ["a"])


def test_a_pulled_message_is_the_rest_apis_message(bare_stack: StackInfo) -> None:
    """gRPC pull, then the same message again (nacked) by the REST pull: the same fields, the same
    values, but for the ack id and the attempt number (dead-letter policy: attempts are counted)."""
    admin = bare_stack.pubsub_admin()
    name = f"pullshape-{uuid.uuid4().hex[:8]}"
    admin.create_topic(name)
    admin.create_topic(name + "-dlq")
    admin.create_subscription(name, name, retry=PushRetry(1, 1, 5), dead_letter_topic=name + "-dlq")
    emulator = Emulator(bare_stack.pubsub_host, bare_stack.project)
    message_id = emulator.publish(name, {"data": "aGVsbG8=", "attributes": {"a": "1", "b": "x y"}})

    (by_grpc,) = emulator.pull(name, 10)
    emulator.modify_ack_deadline(name, [by_grpc["ackId"]], 0)
    by_rest: list[dict[str, Any]] = []
    for _ in range(50):  # the nack takes effect at once, but give it a few polls
        by_rest = emulator.call(f"subscriptions/{name}:pull", {"maxMessages": 10, "returnImmediately": True}).get(
            "receivedMessages", []
        )
        if by_rest:
            break
        time.sleep(0.1)
    (rest,) = by_rest
    emulator.ack(name, [rest["ackId"]])

    assert by_grpc["message"] == rest["message"]
    assert by_grpc["message"]["messageId"] == message_id and by_grpc["message"]["data"] == "aGVsbG8="
    assert by_grpc["message"]["attributes"] == {"a": "1", "b": "x y"}
    assert (by_grpc["deliveryAttempt"], rest["deliveryAttempt"]) == (1, 2)
    assert set(by_grpc) == set(rest) == {"ackId", "message", "deliveryAttempt"}
    assert emulator.pull(name, 10) == []  # acked by its REST ack id: gone


def test_pulling_a_missing_subscription_is_an_emulator_error_naming_it(bare_stack: StackInfo) -> None:
    emulator = Emulator(bare_stack.pubsub_host, bare_stack.project)
    with pytest.raises(EmulatorError, match="subscriptions/no-such-sub:pull: NOT_FOUND"):
        emulator.pull("no-such-sub", 1)
