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


def test_no_wait_runs_past_the_invocations_end() -> None:
    """Inside an invocation (the runner sets its end), a wait that would end after it is not
    slept: the TransientError goes up at once, for Pub/Sub's backoff to take over. Before, a
    300 s Retry-After (nine of them, retries inside retries) was slept until the platform cut
    the invocation off."""
    from shared.retry import waits_end_by

    calls, waits = [], []

    def busy() -> None:
        calls.append(1)
        raise TransientError("429", retry_after=30)

    policy = retrying("busy", attempts=5)
    policy.sleep = waits.append
    with waits_end_by(time.monotonic() + 20), pytest.raises(TransientError, match="429"):
        policy(busy)
    assert (waits, len(calls)) == ([], 1)
    with waits_end_by(time.monotonic() + 40):
        policy = retrying("busy", attempts=2)
        policy.sleep = waits.append
        with pytest.raises(TransientError):
            policy(busy)
    assert waits == [30]  # this one ends in time
    policy = retrying("busy", attempts=5, deadline_s=25)  # a caller's own deadline: no sleep past it either
    policy.sleep = waits.append
    with pytest.raises(TransientError):
        policy(busy)
    assert waits == [30]


def test_the_stage_runner_sets_the_invocations_end(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Each stage's waits end a minute before its function's timeout (verify: 540 s → 480 s)."""
    from shared import runtime
    from shared.ids import Stage
    from shared.retry import invocation_ends
    from shared.stages import runner
    from tests.unit.config_files import MINIMAL, write

    monkeypatch.setenv("OFFSITE_CONFIG", str(write(tmp_path, MINIMAL)))
    runtime.reset()
    seen: list[float | None] = []
    started = time.monotonic()
    runner.run(Stage.VERIFY, {"id": "e1", "type": "t"}, lambda _event, _config: seen.append(invocation_ends()))
    runtime.reset()
    assert seen[0] is not None and started + 480 <= seen[0] <= time.monotonic() + 480
    assert invocation_ends() is None  # outside an invocation: no end
