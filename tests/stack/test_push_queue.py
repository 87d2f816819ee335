"""A push to a function that is not listening is held, as Cloud Run queues a request for an
instance, and answered 429 only when none took it in time (devstack.push.deliver)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from devstack.ports import free_port
from devstack.push import deliver


class _Ok(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_push_waits_for_a_function_that_comes_up_and_is_delivered_once() -> None:
    port = free_port()
    server: list[ThreadingHTTPServer] = []

    def start_late() -> None:
        time.sleep(1.0)  # the supervisor restarting the function
        server.append(ThreadingHTTPServer(("127.0.0.1", port), _Ok))
        server[0].serve_forever()

    threading.Thread(target=start_late, daemon=True).start()
    try:
        outcome = deliver.post(f"http://127.0.0.1:{port}/", b"{}", timeout_s=10)
    finally:
        while not server:
            time.sleep(0.05)
        server[0].shutdown()
    assert outcome.acked and outcome.status == 204
    assert outcome.note.startswith("ok, held ")
    assert float(outcome.note.split()[2]) >= 0.9


def test_nothing_listening_for_the_whole_queue_time_is_a_429_attempt() -> None:
    port = free_port()
    started = time.monotonic()
    outcome = deliver.post(f"http://127.0.0.1:{port}/", b"{}", timeout_s=5, queue_s=1.0)
    assert (outcome.status, outcome.acked) == (429, False)
    assert outcome.note == "no instance took the request within 1 s"
    assert 1.0 <= time.monotonic() - started < 5


def test_only_the_statuses_pub_sub_push_takes_as_success_acknowledge() -> None:
    """Pub/Sub push acknowledges on 102, 200, 201, 202 and 204; any other answer, 2xx or not,
    is a failed attempt (before: every 2xx acknowledged)."""
    answers: list[int] = []

    class Answer(_Ok):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            self.send_response(answers.pop(0))
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        acked = {}
        for status in (200, 201, 202, 204, 203, 205, 206, 226, 302, 500):
            answers.append(status)
            acked[status] = deliver.post(f"http://127.0.0.1:{server.server_port}/", b"{}", timeout_s=5).acked
    finally:
        server.shutdown()
    assert [s for s, ok in acked.items() if ok] == [200, 201, 202, 204]
