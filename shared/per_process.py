"""Per-process singletons that are built once, also under concurrent first calls.

A function instance serves several requests at once (the deployed concurrency), so a cold
instance's first requests arrive together. ``functools.cache`` lets each of them build its own
value (each thread misses the cache, builds, and one result is kept): a cold export_table
parsed the config once per waiting request, and each request built its own clients
(connection pools, a Pub/Sub publisher's channel and threads, a Box token). ``per_process``
builds a value once per argument tuple under a lock and hands every caller the same object;
cachetools' ``@cached(lock=…)`` guards the cache but still builds outside the lock.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Hashable
from typing import Generic, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class PerProcess(Generic[P, T]):
    """``fn`` memoised by its (hashable) arguments; a build runs once, others wait for it."""

    def __init__(self, fn: Callable[P, T]) -> None:
        self._fn = fn
        self._values: dict[Hashable, T] = {}
        # Re-entrant: a builder may call another per-process value (project() → config()).
        self._lock = threading.RLock()
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> T:
        key: Hashable = (args, tuple(sorted(kwargs.items()))) if kwargs else args
        try:
            return self._values[key]  # the warm path takes no lock
        except KeyError:
            pass
        with self._lock:
            if key not in self._values:
                self._values[key] = self._fn(*args, **kwargs)
            return self._values[key]

    def cache_clear(self) -> None:
        """Forget every value (tests that switch stacks or configs within one process)."""
        with self._lock:
            self._values.clear()


def per_process(fn: Callable[P, T]) -> PerProcess[P, T]:
    """Decorator: :class:`PerProcess` of ``fn``."""
    return PerProcess(fn)
