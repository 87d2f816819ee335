"""The dispatcher's emulator client keeps one connection per thread, and survives losing it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from devstack.push.emulator import Emulator, EmulatorError


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
        assert emulator.pull("s", 10) == []
    assert handler.requests == ["/v1/projects/p/subscriptions/s:pull"] * 5
    assert len(handler.connections) == 1


def test_a_connection_the_server_closed_is_replaced_without_failing_the_call(
    server: tuple[ThreadingHTTPServer, type[_Answers]],
) -> None:
    httpd, handler = server
    handler.close_after_answer = True
    emulator = Emulator(f"127.0.0.1:{httpd.server_address[1]}", "p")
    for _ in range(3):
        assert emulator.pull("s", 10) == []
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
