"""shared.in_flight: requests served by this process against THREADS, and the wait it ends."""

from __future__ import annotations

import threading
import time

import pytest

from shared import in_flight
from shared.errors import ConfigError


def test_capacity_is_threads_or_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("THREADS", raising=False)
    assert in_flight.capacity() is None
    monkeypatch.setenv("THREADS", "16")
    assert in_flight.capacity() == 16


@pytest.mark.parametrize("raw", ["0", "-2", "sixteen", "1.5"])
def test_a_bad_threads_value_names_the_variable_and_the_value(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("THREADS", raw)
    with pytest.raises(ConfigError, match=rf"THREADS: '{raw}' is not a number of request threads"):
        in_flight.capacity()


def test_the_process_is_full_while_as_many_requests_are_served_as_it_has_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("THREADS", "2")
    before = in_flight.serving_now()
    with in_flight.serving():
        assert in_flight.serving_now() == before + 1
        assert in_flight.wait_until_full(0) is (before + 1 >= 2)
        with in_flight.serving():
            assert in_flight.wait_until_full(0)
    assert in_flight.serving_now() == before


def test_without_threads_the_process_is_never_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("THREADS", raising=False)
    with in_flight.serving(), in_flight.serving(), in_flight.serving():
        assert in_flight.wait_until_full(0.01) is False


class _Request:
    """A request thread of this process: served, it waits (``wait_until_full``) once per timeout
    in ``waits`` (each wait after the first once ``proceed`` is set), then holds its thread until
    told to return. ``answers`` are the waits' answers; ``answered`` is set by the first."""

    def __init__(self, waits: tuple[float, ...] = ()) -> None:
        self.inside, self.answered = threading.Event(), threading.Event()
        self.proceed, self.leave = threading.Event(), threading.Event()
        self.answers: list[bool] = []
        self.thread = threading.Thread(target=self._serve, args=(waits,), daemon=True)
        self.thread.start()
        assert self.inside.wait(10)

    def _serve(self, waits: tuple[float, ...]) -> None:
        with in_flight.serving():
            self.inside.set()
            for n, timeout_s in enumerate(waits):
                if n:
                    self.proceed.wait(10)
                self.answers.append(in_flight.wait_until_full(timeout_s))
                self.answered.set()
            self.leave.wait(30)

    def done(self) -> None:
        self.leave.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


LONG_WAIT_S = 120.0  # far longer than any test waits


def test_a_waiting_request_is_woken_when_another_fills_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THREADS", str(in_flight.serving_now() + 2))
    waiter = _Request(waits=(LONG_WAIT_S,))
    assert waiter.thread.is_alive() and not waiter.answered.is_set()  # one of two threads busy: still waiting
    other = _Request()
    assert waiter.answered.wait(10)
    assert waiter.answers == [True]  # woken by the second request, not by the 120 s timeout
    waiter.done()
    other.done()


def test_a_wait_in_a_process_with_room_times_out_false(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THREADS", str(in_flight.serving_now() + 2))
    with in_flight.serving():
        assert in_flight.wait_until_full(0.05) is False


def test_one_waiter_lets_go_per_filling_the_one_served_longest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THREADS", str(in_flight.serving_now() + 4))
    oldest, middle, newest = (
        _Request(waits=(LONG_WAIT_S,)),
        _Request(waits=(LONG_WAIT_S,)),
        _Request(waits=(LONG_WAIT_S,)),
    )
    time.sleep(0.2)
    assert not (oldest.answered.is_set() or middle.answered.is_set() or newest.answered.is_set())  # room for one

    filler = _Request()  # the fourth thread: the process is full
    assert oldest.answered.wait(10) and oldest.answers == [True]
    time.sleep(0.3)  # the oldest still holds its thread, but counts as gone: nobody follows it out
    assert not middle.answered.is_set() and not newest.answered.is_set()

    oldest.done()  # three threads busy again: room for one, and both keep waiting
    time.sleep(0.3)
    assert not middle.answered.is_set() and not newest.answered.is_set()

    second_filler = _Request()
    assert middle.answered.wait(10) and middle.answers == [True]
    time.sleep(0.3)
    assert not newest.answered.is_set()

    middle.done()
    third_filler = _Request()
    assert newest.answered.wait(10) and newest.answers == [True]
    for request in (newest, filler, second_filler, third_filler):
        request.done()


def test_a_request_that_lets_go_twice_counts_as_gone_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THREADS", str(in_flight.serving_now() + 2))
    waiter = _Request(waits=(LONG_WAIT_S, 0))
    filler = _Request()
    assert waiter.answered.wait(10)
    second_filler = _Request()  # full again, with the waiter still inside
    waiter.proceed.set()
    waiter.done()
    assert waiter.answers == [True, True]
    assert in_flight.wait_until_full(0)  # two served of two threads: full, nothing left counted as gone
    filler.done()
    second_filler.done()
