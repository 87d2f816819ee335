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


def test_a_waiting_request_is_woken_when_another_fills_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THREADS", str(in_flight.serving_now() + 2))
    woken: list[bool] = []
    entered, leave = threading.Event(), threading.Event()

    def waiter() -> None:
        with in_flight.serving():
            entered.set()
            woken.append(in_flight.wait_until_full(120.0))  # far longer than the test waits below

    thread = threading.Thread(target=waiter)
    thread.start()
    assert entered.wait(10)
    assert thread.is_alive() and not woken  # one of two threads busy: still waiting

    def second_request() -> None:
        with in_flight.serving():
            leave.wait(10)

    other = threading.Thread(target=second_request)
    other.start()
    thread.join(10)
    leave.set()
    other.join(10)
    assert woken == [True]  # woken by the second request, not by the 120 s timeout


def test_a_wait_in_a_process_with_room_times_out_false(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THREADS", str(in_flight.serving_now() + 2))
    with in_flight.serving():
        assert in_flight.wait_until_full(0.05) is False


class _Request:
    """A request thread of this process: served, it waits (``wait_until_full``) or holds its
    thread until told to return."""

    def __init__(self, wait: bool) -> None:
        self.inside, self.answered, self.leave = threading.Event(), threading.Event(), threading.Event()
        self.full: bool | None = None
        self.thread = threading.Thread(target=self._serve, args=(wait,), daemon=True)
        self.thread.start()
        assert self.inside.wait(10)

    def _serve(self, wait: bool) -> None:
        with in_flight.serving():
            self.inside.set()
            if wait:
                self.full = in_flight.wait_until_full(120.0)  # far longer than the test waits
                self.answered.set()
            self.leave.wait(30)

    def done(self) -> None:
        self.leave.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


def test_one_waiter_lets_go_per_filling_the_one_served_longest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THREADS", str(in_flight.serving_now() + 4))
    oldest, middle, newest = _Request(wait=True), _Request(wait=True), _Request(wait=True)
    time.sleep(0.2)
    assert not (oldest.answered.is_set() or middle.answered.is_set() or newest.answered.is_set())  # room for one

    filler = _Request(wait=False)  # the fourth thread: the process is full
    assert oldest.answered.wait(10) and oldest.full is True
    time.sleep(0.3)  # the oldest still holds its thread, but counts as gone: nobody follows it out
    assert not middle.answered.is_set() and not newest.answered.is_set()

    oldest.done()  # three threads busy again: room for one, and both keep waiting
    time.sleep(0.3)
    assert not middle.answered.is_set() and not newest.answered.is_set()

    second_filler = _Request(wait=False)
    assert middle.answered.wait(10) and middle.full is True
    time.sleep(0.3)
    assert not newest.answered.is_set()

    middle.done()
    third_filler = _Request(wait=False)
    assert newest.answered.wait(10) and newest.full is True
    for request in (newest, filler, second_filler, third_filler):
        request.done()


def test_a_request_that_lets_go_twice_counts_as_gone_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THREADS", str(in_flight.serving_now() + 2))
    answers: list[bool] = []
    inside, again = threading.Event(), threading.Event()

    def waiter() -> None:
        with in_flight.serving():
            inside.set()
            answers.append(in_flight.wait_until_full(120.0))
            again.wait(10)
            answers.append(in_flight.wait_until_full(0))

    thread = threading.Thread(target=waiter, daemon=True)
    thread.start()
    assert inside.wait(10)
    filler = _Request(wait=False)
    deadline = time.monotonic() + 10
    while not answers and time.monotonic() < deadline:
        time.sleep(0.01)
    second_filler = _Request(wait=False)  # full again, with the waiter still inside
    again.set()
    thread.join(10)
    assert answers == [True, True]
    assert in_flight.wait_until_full(0)  # two served of two threads: full, nothing left counted as gone
    filler.done()
    second_filler.done()
