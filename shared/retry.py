"""The one retry helper (rclone's pacer): exponential backoff with jitter that honours Retry-After.

Every network call in offsite that may be retried in-process goes through ``retry_call`` or
``retrying``. Only ``TransientError`` is retried; anything else propagates at once. When the
attempts run out, or the next wait would end past the invocation's end (:func:`waits_end_by`,
set by the stage runner), the last ``TransientError`` propagates, so the stage fails and Pub/Sub
or Eventarc redelivers later.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypedDict, TypeVar, Unpack

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, stop_before_delay
from tenacity.stop import stop_base
from tenacity.wait import wait_random_exponential

from shared.errors import TransientError
from shared.log import get_logger

T = TypeVar("T")
log = get_logger(__name__)

MAX_RETRY_AFTER_S = 300.0


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# When the running invocation must have given up waiting (time.monotonic()); None outside one.
_invocation_ends: ContextVar[float | None] = ContextVar("invocation_ends", default=None)


@contextmanager
def waits_end_by(deadline: float) -> Iterator[None]:
    """Within the block, no retry sleeps past ``deadline``: the TransientError it would wait out
    is raised instead, so the stage fails in time for Pub/Sub's backoff to take over, rather than
    the platform cutting the invocation off mid-wait (a 300 s Retry-After, retries inside
    retries). Threads started with ``shared.log.in_context`` keep it. Nested (a wait for a
    request inside an invocation), the earlier deadline holds."""
    outer = _invocation_ends.get()
    token = _invocation_ends.set(deadline if outer is None else min(outer, deadline))
    try:
        yield
    finally:
        _invocation_ends.reset(token)


def invocation_ends() -> float | None:
    """The ``time.monotonic()`` no retry waits past here (None outside an invocation)."""
    return _invocation_ends.get()


class _StopBeforeInvocationEnds(stop_base):
    def __call__(self, state: RetryCallState) -> bool:
        ends = _invocation_ends.get()
        return ends is not None and time.monotonic() + (state.upcoming_sleep or 0.0) >= ends


class _WaitHonouringRetryAfter:
    def __init__(self, initial: float, maximum: float) -> None:
        self._backoff = wait_random_exponential(multiplier=initial, max=maximum)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            return min(exc.retry_after, MAX_RETRY_AFTER_S)
        return float(self._backoff(state))


def _log_retry(what: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "retrying",
            what=what,
            attempt=state.attempt_number,
            wait_s=round(state.next_action.sleep, 2) if state.next_action else None,
            error=str(exc),
        )

    return before_sleep


def retrying(
    what: str,
    *,
    attempts: int = 6,
    initial_s: float = 0.5,
    max_wait_s: float = 30.0,
    deadline_s: float | None = None,
) -> Retrying:
    """A tenacity ``Retrying`` for ``for attempt in retrying(...): with attempt: ...`` loops."""
    stop: stop_base = stop_after_attempt(attempts) | _StopBeforeInvocationEnds()
    if deadline_s is not None:
        stop = stop | stop_before_delay(deadline_s)  # no sleep that would end past it
    return Retrying(
        retry=retry_if_exception_type(TransientError),
        wait=_WaitHonouringRetryAfter(initial_s, max_wait_s),
        stop=stop,
        reraise=True,
        before_sleep=_log_retry(what),
    )


class RetryOptions(TypedDict, total=False):
    """The keyword options of :func:`retrying`, passed on by :func:`retry_call`."""

    attempts: int
    initial_s: float
    max_wait_s: float
    deadline_s: float | None


def retry_call(fn: Callable[[], T], what: str, **options: Unpack[RetryOptions]) -> T:
    """Call ``fn`` until it returns, retrying ``TransientError`` (see :func:`retrying` for the options)."""
    return retrying(what, **options)(fn)
