"""Run test calls really at the same time, on threads."""

from __future__ import annotations

import threading
from collections.abc import Callable


def together(*calls: Callable[[], object]) -> list[object]:
    """Run the calls in parallel threads, released at once by a barrier; their results in order.
    Re-raises the first error any of them raised (after every thread has finished)."""
    results: list[object] = [None] * len(calls)
    errors: list[BaseException] = []
    start = threading.Barrier(len(calls))

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = calls[i]()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results
