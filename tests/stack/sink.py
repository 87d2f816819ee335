"""An in-process HTTP endpoint that records what it receives (stands in for a function)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # the push dispatcher opens up to a function's limit at once (default: 5)


class RecordingSink:
    """``status_for(path, body) -> int`` decides the answer (default 204)."""

    def __init__(self, status_for: Callable[[str, Any], int] = lambda path, body: 204) -> None:
        self.received: list[Received] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw
                with sink._lock:
                    sink.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(status_for(self.path, body))
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout_s: float = 60.0) -> list[Received]:
        """Wait until ``predicate(received)`` holds; AssertionError with what arrived otherwise."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                snapshot = list(self.received)
            if predicate(snapshot):
                return snapshot
            time.sleep(0.1)
        raise AssertionError(f"condition not met; received: {[(r.path, r.body) for r in snapshot]}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
