"""A stand-in for a Slack incoming webhook: records what alerts would have said.

``POST /hook`` with a JSON body appends it as one line to the alerts file and answers
``ok`` (like Slack); ``GET /messages`` returns every recorded body as a JSON list;
``GET /health`` answers ``ok``. A body that is not JSON gets Slack's 400 ``invalid_payload``.

    python -m devstack.webhook_sink --host 127.0.0.1 --port N --alerts-file ROOT/alerts.jsonl
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from devstack.ports import server_arguments

_write_lock = threading.Lock()


def read_messages(alerts_file: Path) -> list[Any]:
    try:
        lines = alerts_file.read_text().splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.strip()]


class SinkHandler(BaseHTTPRequestHandler):
    alerts_file: Path

    def do_GET(self) -> None:
        if self.path == "/health":
            self._reply(200, b"ok", "text/plain")
        elif self.path == "/messages":
            self._reply(200, json.dumps(read_messages(self.alerts_file)).encode(), "application/json")
        else:
            self._reply(404, b"not found", "text/plain")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.path != "/hook":
            self._reply(404, b"no_service", "text/plain")
            return
        try:
            payload = json.loads(body)
        except ValueError:
            self._reply(400, b"invalid_payload", "text/plain")
            return
        with _write_lock, open(self.alerts_file, "a") as fh:
            fh.write(json.dumps(payload) + "\n")
        self._reply(200, b"ok", "text/plain")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main(argv: list[str] | None = None) -> None:
    parser = server_arguments(__doc__)
    parser.add_argument("--alerts-file", type=Path, required=True)
    args = parser.parse_args(argv)
    args.alerts_file.parent.mkdir(parents=True, exist_ok=True)
    args.alerts_file.touch()
    handler = type("BoundSinkHandler", (SinkHandler,), {"alerts_file": args.alerts_file})
    server = ThreadingHTTPServer((args.host, args.port), handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
