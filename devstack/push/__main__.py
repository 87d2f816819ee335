"""python -m devstack.push --root ROOT --pubsub 127.0.0.1:N --project P --port M

Delivers every route of ``ROOT/push-routes.json`` and supervises the stack's function
processes. ``GET /health`` answers ``ok``; ``GET /stats`` gives, per subscription, the
concurrency limit, deliveries in flight, the most seen at once and the acked count, and the
supervisor's restarts.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from devstack.push.dispatcher import SubscriptionWorker, log_event, start_workers
from devstack.push.emulator import Emulator
from devstack.push.routes import read_routes
from devstack.push.supervisor import Supervisor


def _handler(workers: list[SubscriptionWorker], supervisor: Supervisor) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                body = b"ok"
            elif self.path == "/stats":
                stats = {w.route.subscription: w.stats() for w in workers}
                body = json.dumps({"subscriptions": stats, "restarts": supervisor.restarts}).encode()
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            """``/doorbell/<topic>``: the emulator pushed a message of that topic (the push
            subscription ``doorbell-<topic>``): wake its subscriptions' pull loops."""
            self.rfile.read(int(self.headers.get("content-length") or 0))
            if not self.path.startswith("/doorbell/"):
                self.send_error(404)
                return
            topic = self.path.removeprefix("/doorbell/")
            for worker in workers:
                if worker.route.topic == topic:
                    worker.ring()
            self.send_response(204)  # any 2xx acks the doorbell
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="stack directory (push-routes.json, stack.json)")
    parser.add_argument("--pubsub", required=True, help="emulator host:port")
    parser.add_argument("--project", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--no-supervise", action="store_true", help="deliver only; do not restart functions")
    args = parser.parse_args(argv)
    stop = threading.Event()
    routes = read_routes(args.root)
    workers = start_workers(Emulator(args.pubsub, args.project), routes, stop)
    supervisor = Supervisor(args.root, stop)
    if not args.no_supervise:
        threading.Thread(target=supervisor.run, name="supervisor", daemon=True).start()
    log_event(action="started", subscriptions=[r.subscription for r in routes])
    server = ThreadingHTTPServer((args.host, args.port), _handler(workers, supervisor))
    server.daemon_threads = True

    def on_term(*_: object) -> None:
        stop.set()
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    server.serve_forever()


if __name__ == "__main__":
    main()
