"""Following a published request by reading the run history until it is answered (the HTTP
trigger's ``?wait=``, ``offsite mirror reconcile --wait``).

Published: from here no answer may invite a retry (a 503 or a 500 would start a second run), so
a history that cannot be read now (TransientError) is read again, and one that cannot be read
at all (access refused, anything else) ends the wait; the caller names either (the trigger in
its 202)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from shared import log, retry
from shared.errors import TransientError

logger = log.get_logger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Polled(Generic[T]):
    """The last value read (``initial`` if none could be), why the last read failed (None: it
    did not), and whether the wait ended because the history refused to be read."""

    value: T
    unread: str | None = None
    refused: bool = False


def poll_history(
    read: Callable[[], T],
    done: Callable[[T], bool],
    initial: T,
    *,
    wait: float,
    sleep: Callable[[float], None],
    what: str,
    poll_s: float,
) -> Polled[T]:
    """``read()`` every ``poll_s`` until ``done`` of what it read, or ``wait`` seconds ran out."""
    deadline = time.monotonic() + wait
    value, unread = initial, None
    while True:
        try:
            with retry.waits_end_by(deadline):  # a read retrying past the wait would overrun it
                value, unread = read(), None
        except TransientError as exc:
            logger.warning(f"{what} not readable now; polling on", error=str(exc))
            unread = str(exc)
        except Exception as exc:  # published: a 500 would invite a retry, i.e. a second run
            logger.exception(f"{what} not readable; answering with the request started")
            return Polled(value, str(exc), refused=True)
        if (unread is None and done(value)) or time.monotonic() >= deadline:
            return Polled(value, unread)
        sleep(min(poll_s, max(0.0, deadline - time.monotonic())))
