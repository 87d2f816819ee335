"""Keep many function instances under Box's per-user rate limits without a storm of 429s.

Box limits a user (here: the app's service account) to about 1,000 API calls and 240 uploads
a minute (docs/box.md, "Rate limits"). Every instance of every function that talks to Box
shares that limit, and none can see the others, so each paces itself to its share: the
configured limit × :data:`HEADROOM` / the number of instances that may run at once. A 429 still
happens when the estimate is wrong (another app on the same user, say); it is retried after
``Retry-After`` as before (shared.destinations.box.http).

A pacer is a token bucket per (Box API, limit kind) in this process, shared by every
:class:`BoxHttp` of the process, so the requests an instance serves concurrently split its
share instead of each taking all of it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from shared.config import BoxDestination
from shared.per_process import per_process

HEADROOM = 0.9  # leave room for clocks, retries and calls nothing paces (the CLI, a person)
BURST_S = 2.0  # a bucket holds this many seconds of its rate: short bursts pass, storms do not


class Pacer:
    """A token bucket: ``acquire()`` returns at once while tokens last, else sleeps for one."""

    def __init__(
        self,
        per_minute: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate_s = per_minute / 60.0
        self.capacity = max(1.0, self.rate_s * BURST_S)
        self._tokens = self.capacity
        self._clock, self._sleep = clock, sleep
        self._stamp = clock()
        self._lock = threading.Lock()
        self.waited_s = 0.0

    def acquire(self) -> float:
        """Take one token, waiting for it if needed; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate_s)
            self._stamp = now
            self._tokens -= 1.0  # reserve now; a negative balance is the queue in front of us
            wait = -self._tokens / self.rate_s if self._tokens < 0 else 0.0
            self.waited_s += wait
        if wait > 0:
            self._sleep(wait)
        return wait


@per_process
def _pacer(base_url: str, kind: str, rate_per_minute: float) -> Pacer:
    """One pacer per (Box API, limit kind, rate) in this process."""
    return Pacer(rate_per_minute)


def instances_sharing(box: BoxDestination) -> int:
    """How many instances may call Box at once: the configured figure, else every function
    that uses Box (delivers to it, reads it back, collects or restores through it), at their
    deployed instance caps (shared/topology.py)."""
    if box.paced_instances is not None:
        return box.paced_instances
    from shared import topology

    return sum(f.max_instances for f in topology.FUNCTIONS if "box" in f.uses)


def pacers(box: BoxDestination) -> tuple[Pacer | None, Pacer | None]:
    """This process's (calls, uploads) pacers for ``box``; None where pacing is off."""
    share = HEADROOM / instances_sharing(box)
    found: list[Pacer | None] = []
    for kind, limit in (("calls", box.calls_per_minute), ("uploads", box.uploads_per_minute)):
        if limit is None:
            found.append(None)
            continue
        found.append(_pacer(box.base_url, kind, limit * share))
    return found[0], found[1]
