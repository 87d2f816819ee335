"""Watching the local stack from outside, for the stack scenarios (fan-out, end to end, export).

Pull subscriptions of the bench's own, the emulators' timestamps (one clock), and deleting a
finished run's objects so runs do not overlap.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

# ---- watching the local stack from outside -------------------------------------------------


@contextlib.contextmanager
def stack_env(info: Any) -> Iterator[None]:
    """Point this process's Google clients at the stack (``info.env``) for the block, then restore."""
    from shared.gcp import clients

    saved = dict(os.environ)
    os.environ.update(info.env)
    clients.reset()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        clients.reset()


@contextlib.contextmanager
def on_stack(stack: Any, scenario: str) -> Iterator[tuple[str, dict[str, str]]]:
    """A scratch folder and the environment (quiet logs) for a scenario's children on the local
    stack, with this process's clients pointed at it; ``stack`` None (not started) is an error."""
    if stack is None:
        raise RuntimeError(f"the {scenario} benchmark needs the local stack (bench/run.py starts it)")
    env = {**stack.env, "OFFSITE_LOG_LEVEL": "warning"}
    with tempfile.TemporaryDirectory(prefix=f"offsite-{scenario}-bench-") as tmp, stack_env(stack):
        yield tmp, env


def epoch(rfc3339: Any) -> float:
    """A Pub/Sub publish time (datetime) or a GCS timestamp ("…T…Z", µs) → seconds since the epoch."""
    if isinstance(rfc3339, dt.datetime):
        return rfc3339.timestamp()
    return dt.datetime.fromisoformat(str(rfc3339)).timestamp()


@dataclass(frozen=True)
class Seen:
    """One message a watch received: when it was published, its attributes and its (JSON) data."""

    topic: str
    published: float  # epoch seconds, the emulator's publish time
    attributes: dict[str, str]
    data: dict[str, Any]


class Watch:
    """Streaming-pull subscriptions of the bench's own on stack topics: a run timed from outside.

    Every message published after ``start`` is kept (and acked), so the bench sees exactly what
    the functions see — table exports, GCS notifications, receipts, results — with the emulator's
    publish times, all on this machine's clock. Each message is kept once: a message delivered
    to the watch again (at-least-once, an ack that came late) only counts in ``redelivered``, so
    what is counted is what was published. Kept per topic, and :meth:`forget` drops what earlier
    runs left: the waits poll every 50 ms, and on two cores a scan over every message of every
    earlier run (~4,000 per 500-table run) took CPU from the stack it was timing.
    """

    def __init__(self, info: Any, topics: Sequence[str]) -> None:
        from google.cloud import pubsub_v1

        self.info = info
        self.topics = list(topics)
        self._seen: dict[str, list[Seen]] = {topic: [] for topic in self.topics}
        self.redelivered = 0
        self._ids: set[str] = set()
        self._lock = threading.Lock()
        self._client = pubsub_v1.SubscriberClient()
        self._futures: list[Any] = []
        self._paths: list[str] = []

    def __enter__(self) -> Self:
        suffix = f"{os.getpid()}-{time.monotonic_ns() % 10**9}"
        for topic in self.topics:
            path = self._client.subscription_path(self.info.project, f"bench-{topic}-{suffix}")
            self._client.create_subscription(name=path, topic=f"projects/{self.info.project}/topics/{topic}")
            self._paths.append(path)
            self._futures.append(self._client.subscribe(path, self._receiver(topic)))
        return self

    def __exit__(self, *exc: object) -> None:
        for future in self._futures:
            future.cancel()
        for path in self._paths:
            with contextlib.suppress(Exception):
                self._client.delete_subscription(subscription=path)
        self._client.close()

    def _receiver(self, topic: str) -> Callable[[Any], None]:
        def receive(message: Any) -> None:
            try:
                data = json.loads(message.data)
            except ValueError:
                data = {}
            seen = Seen(topic, epoch(message.publish_time), dict(message.attributes), data)
            with self._lock:
                if message.message_id in self._ids:
                    self.redelivered += 1
                else:
                    self._ids.add(message.message_id)
                    self._seen[topic].append(seen)
            message.ack()

        return receive

    def select(self, topic: str, where: Callable[[Seen], bool] = lambda s: True) -> list[Seen]:
        with self._lock:
            kept = list(self._seen[topic])
        return [s for s in kept if where(s)]

    def forget(self) -> None:
        """Drop every message seen so far (a run about to start never looks at earlier runs').
        Their ids stay: a late redelivery of one is still not counted as new."""
        with self._lock:
            for kept in self._seen.values():
                kept.clear()

    def wait(self, done: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Poll ``done`` until true; TimeoutError naming ``what`` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not seen within {timeout_s:.0f} s")
            time.sleep(0.05)


def purge_run(info: Any, prefixes: Sequence[str], run_id: str) -> int:
    """Delete a finished run's objects (not timed) from the exports and the state bucket, and the
    empty folders fake-gcs-server leaves behind. Its filesystem backend lists a prefix by walking
    the whole bucket's tree (~12 µs an object: 18 ms at 1,000, 205 ms at 16,000) and never removes
    a folder its deletes emptied: 4,000 objects deleted still cost 175 ms a listing, against 1.6 ms
    for an empty bucket. Without both, each run of a bench is slower than the one before."""
    from devstack.launches import gcs_root
    from shared.gcp import clients

    client = clients.storage_client()
    buckets = (info.bucket, info.state_bucket)
    doomed = [
        b
        for bucket in buckets
        for p in prefixes
        for b in client.list_blobs(bucket, prefix=p)
        if f"/{run_id}/" in b.name
    ]
    for blob in doomed:
        with contextlib.suppress(Exception):  # already gone is fine
            blob.delete()
    for bucket in buckets:
        _remove_empty_run_folders(gcs_root(Path(info.root)) / bucket, run_id)
    return len(doomed)


def _remove_empty_run_folders(bucket_dir: Path, run_id: str) -> None:
    """The run's folders in fake-gcs-server's tree, deepest first, where nothing is left in them
    (the run is over: nothing writes there any more)."""
    for folder, _, _ in os.walk(bucket_dir, topdown=False):
        if run_id in Path(folder).relative_to(bucket_dir).parts:
            with contextlib.suppress(OSError):  # not empty: something of it was kept
                os.rmdir(folder)
