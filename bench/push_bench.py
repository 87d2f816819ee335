"""Local push start latency: N messages published at once → N deliveries started.

    PYTHONPATH=. python bench/push_bench.py [--messages 100] [--runs 3] [--hold 0]

Starts a private stack without functions (Pub/Sub emulator, fake-gcs-server, relay, push
dispatcher) whose ``export_table`` events go to an in-process endpoint. Each run publishes N
messages in one publish call on ``table-exports`` and measures, from just before the publish,
the time until the endpoint has received the first delivery of every one of them.

- ``devstack push``: the stack's dispatcher (devstack/push), concurrency limit of export_table
  from shared/topology.py (max instances × requests per instance).
- peer ``emulator push``: the emulator's own push subscription on a topic of its own, pushing to
  the same endpoint (what the stack used before devstack/push).

``--hold S`` makes the endpoint answer after S seconds (a function that works a while): the
dispatcher then starts at most its concurrency limit at once, as the cloud would.
Target: 100 messages started in ≤ 2 s. Prints one line per run and the medians.
"""

from __future__ import annotations

import argparse
import base64
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from devstack.stack import start_stack, stop_stack
from devstack.state import StackInfo
from shared import topology

TARGET_S = 2.0


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # the default backlog (5) drops connections under 40 at once
    daemon_threads = True


class Endpoint:
    """Records the first arrival time of each message id; answers 204 after ``hold_s``."""

    def __init__(self, hold_s: float) -> None:
        self.first: dict[str, float] = {}
        self.lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                import json

                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
                now = time.monotonic()
                with endpoint.lock:
                    endpoint.first.setdefault(body["message"]["messageId"], now)
                time.sleep(hold_s)
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def time_to_all(self, ids: list[str], t0: float, timeout_s: float = 120.0) -> float:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if all(i in self.first for i in ids):
                    return max(self.first[i] for i in ids) - t0
            time.sleep(0.005)
        raise TimeoutError(f"only {sum(i in self.first for i in ids)} of {len(ids)} started in {timeout_s} s")


def publish_batch(info: StackInfo, topic: str, count: int) -> tuple[list[str], float]:
    """Publish ``count`` messages in one call; (their ids, monotonic time just before)."""
    tag = uuid.uuid4().hex[:8]
    msgs = [{"data": base64.b64encode(f"{tag}-{i}".encode()).decode()} for i in range(count)]
    t0 = time.monotonic()
    got = info.pubsub_admin()._call("POST", f"topics/{topic}:publish", {"messages": msgs})
    return list(got["messageIds"]), t0


def measure(info: StackInfo, endpoint: Endpoint, topic: str, count: int) -> float:
    ids, t0 = publish_batch(info, topic, count)
    return endpoint.time_to_all(ids, t0)


def emulator_push_topic(info: StackInfo, endpoint: Endpoint) -> str:
    """A topic of its own with an emulator push subscription to the same endpoint."""
    topic = f"bench-push-{uuid.uuid4().hex[:8]}"
    admin = info.pubsub_admin()
    admin.create_topic(topic)
    ack_deadline = topology.function("export_table").timeout_s
    admin.create_subscription(
        f"{topic}-sub",
        topic,
        push_endpoint=f"{endpoint.url}/projects/{info.project}/topics/{topic}",
        ack_deadline_s=ack_deadline,
    )
    return topic


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--hold", type=float, default=0.0, help="seconds the endpoint takes to answer")
    args = parser.parse_args(argv)
    endpoint = Endpoint(args.hold)
    root = Path(tempfile.mkdtemp(prefix="offsite-push-bench-"))
    root.chmod(0o755)
    try:
        info = start_stack(
            root / "stack",
            functions=False,
            without=("bigquery", "sftp", "box", "webhook"),
            targets={"export_table": endpoint.url},
        )
        peer_topic = emulator_push_topic(info, endpoint)
        limit = topology.function("export_table").max_concurrent_requests
        print(f"{args.messages} messages published at once; endpoint holds {args.hold} s; limit {limit}")
        results: dict[str, list[float]] = {"devstack push": [], "emulator push (peer)": []}
        for run in range(1, args.runs + 1):
            for name, topic in (("devstack push", topology.TABLE_EXPORTS), ("emulator push (peer)", peer_topic)):
                seconds = measure(info, endpoint, topic, args.messages)
                results[name].append(seconds)
                print(f"run {run}  {name:<22} all started in {seconds:6.2f} s")
        for name, values in results.items():
            med = statistics.median(values)
            verdict = "meets" if med <= TARGET_S else "misses"
            print(f"median {name:<22} {med:6.2f} s  ({verdict} the {TARGET_S:.0f} s target)")
    finally:
        stop_stack(root / "stack")
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
