"""The requests this process is serving, against how many it may be handed at once.

functions-framework serves a function on ``THREADS`` threads, and infra sets ``THREADS`` to the
deployed ``max_instance_request_concurrency`` (devstack: to its push limit). With every thread
busy the platform queues the next request (Cloud Run answers 429 after it waited) and Pub/Sub
backs off, counting a delivery attempt towards the dead-letter topic. A request that is only
*waiting* (export_table on its BigQuery job) should then give its thread back: the job's
completion event finishes the work. :func:`wait_until_full` is that wait, woken the moment the
process fills up.

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
    global _serving
    with _changed:
        _serving += 1
        _changed.notify_all()
    try:
        yield
    finally:
        with _changed:
            _serving -= 1


def serving_now() -> int:
    return _serving


def wait_until_full(timeout_s: float) -> bool:
    """Sleep up to ``timeout_s``; True as soon as (or if already) every request thread of this
    process is busy: the next request waits for one."""
    limit = capacity()
    if limit is None:
        time.sleep(timeout_s)
        return False
    with _changed:
        return _changed.wait_for(lambda: _serving >= limit, timeout_s)
