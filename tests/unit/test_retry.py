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


def test_a_nested_end_never_extends_the_outer_one() -> None:
    """A wait for a request inside an invocation (the HTTP trigger's ``?wait=``) sets its own end;
    the earlier of the two holds, so the inner one cannot let a retry outlive the invocation."""
    from shared.retry import invocation_ends, waits_end_by

    now = time.monotonic()
    with waits_end_by(now + 20):
        with waits_end_by(now + 60):
            assert invocation_ends() == now + 20
        with waits_end_by(now + 5):
            assert invocation_ends() == now + 5
        assert invocation_ends() == now + 20
    assert invocation_ends() is None


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


def test_a_wait_for_a_request_never_retries_a_read_past_its_end() -> None:
    """Following a request (``?wait=``, ``--wait``): a read of the history that meets a transient
    error with a 10 s Retry-After is not retried past the wait's end; the wait answers that the
    history could not be read now. Before, each read slept out its retries (20 s here) whatever
    was left of the wait: a 120 s `offsite run --wait` with GCS away took 3 min 43 s."""
    from shared.reporting.polling import poll_history
    from shared.retry import retry_call

    attempts: list[float] = []

    def read() -> None:
        def once() -> None:
            attempts.append(time.monotonic())
            raise TransientError("reading the run history: 503", retry_after=10)

        return retry_call(once, "reading the run history", attempts=3)

    started = time.monotonic()
    polled = poll_history(read, lambda _v: True, None, wait=0.3, sleep=time.sleep, what="the history", poll_s=0.1)
    assert polled.unread == "reading the run history: 503" and not polled.refused
    assert attempts, "the history was never read"
    gaps = [b - a for a, b in zip([started, *attempts], attempts, strict=False)]
    assert max(gaps) < 5, f"a retry slept its 10 s Retry-After inside the wait: {gaps}"
