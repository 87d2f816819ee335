"""A process the stack started is known by (pid, start time) even when the wall clock is set
(devstack/procs.py). Seen on this VM: its clock stepped 25 s, psutil's create_time() of every
process moved with it, and the push supervisor restarted every live function mid-request."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import psutil._pslinux as pslinux
import pytest

from devstack import procs


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[procs.Spawned]:
    spawned = procs.spawn("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], log=tmp_path / "s.log")
    yield spawned
    procs.stop(spawned.pid, spawned.create_time, grace_s=1.0)


def test_a_started_process_stays_known_when_the_wall_clock_is_set(
    sleeper: procs.Spawned, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert procs.is_alive(sleeper.pid, sleeper.create_time)
    booted, wall = pslinux.boot_time(), psutil.Process(sleeper.pid).create_time()
    # The clock set 25 s ahead: /proc/stat's btime (wall clock now − uptime) moves by as much.
    monkeypatch.setattr(pslinux, "boot_time", lambda: booted + 25.0)
    assert psutil.Process(sleeper.pid).create_time() - wall == pytest.approx(25.0)  # what misled the stack
    assert procs.is_alive(sleeper.pid, sleeper.create_time)
    assert procs.process(sleeper.pid, sleeper.create_time) is not None


def test_another_process_under_the_same_pid_is_not_ours(sleeper: procs.Spawned) -> None:
    """A pid with a different start time (the pid reused) is neither alive as ours nor stopped."""
    assert not procs.is_alive(sleeper.pid, sleeper.create_time + 5.0)
    assert procs.stop(sleeper.pid, sleeper.create_time + 5.0) == []
    assert procs.is_alive(sleeper.pid, sleeper.create_time)


def test_a_start_time_recorded_on_the_wall_clock_by_an_older_stack_still_matches(sleeper: procs.Spawned) -> None:
    """stack.json written before start times were counted from boot keeps working for `down`."""
    recorded = psutil.Process(sleeper.pid).create_time()
    assert procs.is_alive(sleeper.pid, recorded)


def test_the_start_time_is_read_past_a_name_holding_spaces_and_parentheses(tmp_path: Path) -> None:
    odd = tmp_path / "a b) (c"
    odd.symlink_to(sys.executable)
    proc = subprocess.Popen([str(odd), "-c", "import time; time.sleep(30)"])
    try:
        started = procs.start_time(psutil.Process(proc.pid))
        assert psutil.Process(proc.pid).name() == "a b) (c"
        assert abs(started + psutil.boot_time() - psutil.Process(proc.pid).create_time()) <= 1.0
    finally:
        proc.kill()
        proc.wait()
