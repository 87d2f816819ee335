"""The dispatcher's shared wake-up: activity on one subscription ends every other one's idle wait."""

from __future__ import annotations

import threading

from devstack.push.dispatcher import IDLE_POLL_BUSY_MAX_S, IDLE_POLL_MAX_S, QUIET_AFTER_S, Activity


def test_a_bump_from_another_thread_ends_a_long_idle_wait() -> None:
    activity = Activity()
    seen = activity.generation
    woke: list[bool] = []
    waiter = threading.Thread(target=lambda: woke.append(activity.wait(seen, timeout_s=30.0)))
    waiter.start()
    activity.bump()
    waiter.join(timeout=30.0)
    assert not waiter.is_alive(), "the wait must end with the bump, not its 30 s timeout"
    assert woke == [True]


def test_a_wait_without_activity_times_out_and_says_so() -> None:
    activity = Activity()
    assert activity.wait(activity.generation, timeout_s=0.05) is False


def test_activity_before_the_wait_began_is_not_missed() -> None:
    """A pull loop reads the generation before it pulls; a bump during the pull still counts."""
    activity = Activity()
    seen = activity.generation
    activity.bump()
    assert activity.wait(seen, timeout_s=0.0) is True


def test_the_idle_poll_slows_only_after_a_quiet_spell_and_speeds_up_on_activity() -> None:
    activity = Activity()
    assert activity.poll_cap_s() == IDLE_POLL_BUSY_MAX_S, "a dispatcher just started counts as busy"
    activity.last_s -= QUIET_AFTER_S + 1  # as if nothing had happened for longer than that
    assert activity.poll_cap_s() == IDLE_POLL_MAX_S
    activity.bump()
    assert activity.poll_cap_s() == IDLE_POLL_BUSY_MAX_S
    assert IDLE_POLL_BUSY_MAX_S < IDLE_POLL_MAX_S
