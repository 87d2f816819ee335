"""The requests this process is serving, against how many it may be handed at once.

functions-framework serves a function on ``THREADS`` threads, and infra sets ``THREADS`` to the
deployed ``max_instance_request_concurrency`` (devstack: to its push limit). With every thread
busy the platform queues the next request (Cloud Run answers 429 after it waited) and Pub/Sub
backs off, counting a delivery attempt towards the dead-letter topic. A request that is only
*waiting* (export_table on its BigQuery job) should then give its thread back: the job's
completion event finishes the work. :func:`wait_until_full` is that wait, woken the moment the
process fills up.

One waiting request gives its thread back per time the process fills, the one that has been
served longest: a single arrival needs a single thread, and every request let go is one export
finished later by its completion event instead of in place. The longest-served waiter goes
first because it has the least of its budget left and, with job durations long-tailed, the job
least likely to end within it. A request that let go counts as gone until it returns, so the
next waiter does not follow it out meanwhile.

Without ``THREADS`` (tests, a script) the capacity is unknown and the process is never full.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from shared.errors import ConfigError

THREADS_ENV = "THREADS"

_changed = threading.Condition()
_serving = 0
_letting_go = 0  # requests that gave their thread back and have not returned yet
_waiting: dict[int, float] = {}  # thread id → when its request started, for every request in the wait
_request = threading.local()  # started (monotonic), let_go (bool): set inside serving()


def capacity() -> int | None:
    """Requests this process may be handed at once (``THREADS``), or None when not set."""
    raw = os.environ.get(THREADS_ENV, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{THREADS_ENV}: {raw!r} is not a number of request threads (expected an integer >= 1)")
    return int(raw)


@contextmanager
def serving() -> Iterator[None]:
    """Count one request as served by this process for the duration of the block."""
    global _serving, _letting_go
    with _changed:
        _serving += 1
        _changed.notify_all()
    outer = vars(_request).copy()  # a request served inside another (tests) restores it after
    _request.started, _request.let_go = time.monotonic(), False
    try:
        yield
    finally:
        with _changed:
            _serving -= 1
            if _request.let_go:
                _letting_go -= 1
        vars(_request).clear()
        vars(_request).update(outer)


def serving_now() -> int:
    return _serving


def wait_until_full(timeout_s: float) -> bool:
    """Sleep up to ``timeout_s``; True as soon as (or if already) every request thread of this
    process is busy and this is the waiting request served longest (module docstring): the next
    request waits for its thread. A True answer is given to one waiter per filling."""
    global _letting_go
    limit = capacity()
    if limit is None:
        time.sleep(timeout_s)
        return False
    me = threading.get_ident()
    inside = hasattr(_request, "started")

    def my_turn() -> bool:
        return _serving - _letting_go >= limit and min(_waiting, key=_waiting.__getitem__) == me

    with _changed:
        _waiting[me] = _request.started if inside else time.monotonic()
        try:
            full = _changed.wait_for(my_turn, timeout_s)
            if full and inside and not _request.let_go:  # counted once per request
                _request.let_go = True
                _letting_go += 1
            return full
        finally:
            del _waiting[me]
            if _serving - _letting_go >= limit:  # still full: the next oldest waiter may now be the one to go
                _changed.notify_all()
