from __future__ import annotations

import time

import pytest

from shared.errors import PermanentError, TransientError
from shared.retry import parse_retry_after, retry_call, retrying


def test_transient_errors_are_retried_until_success() -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TransientError("503", retry_after=0)
        return "ok"

    assert retry_call(flaky, "flaky", attempts=5) == "ok"
    assert len(calls) == 3


def test_permanent_errors_are_not_retried() -> None:
    calls = []

    def broken() -> None:
        calls.append(1)
        raise PermanentError("401 bad token")

    with pytest.raises(PermanentError):
        retry_call(broken, "broken", attempts=5)
    assert len(calls) == 1


def test_last_transient_error_propagates_when_attempts_run_out() -> None:
    calls = []

    def down() -> None:
        calls.append(1)
        raise TransientError("still down", retry_after=0)

    with pytest.raises(TransientError, match="still down"):
        retry_call(down, "down", attempts=3)
    assert len(calls) == 3


def test_retry_after_is_the_wait() -> None:
    waits = []
    policy = retrying("x", attempts=3)
    policy.sleep = waits.append  # tenacity's injectable sleep: record instead of sleeping
    calls = []

    def limited() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise TransientError("429", retry_after=7.5)
        return "done"

    assert policy(limited) == "done"
    assert waits == [7.5]


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))
    assert 50 <= (parse_retry_after(future) or 0) <= 61
