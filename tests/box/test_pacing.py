"""shared/destinations/box/pacing.py: each instance's share of Box's limits, as a token bucket.

A fake clock drives the bucket (the arithmetic is what is checked; nothing sleeps)."""

from __future__ import annotations

import pytest

from shared import topology
from shared.config import BoxAuth, BoxDestination
from shared.destinations.box.http import _carries_content
from shared.destinations.box.pacing import HEADROOM, Pacer, instances_sharing, pacers
from shared.secrets import Secret


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_bucket_lets_a_burst_through_then_spaces_calls_at_the_rate() -> None:
    clock = FakeClock()
    pacer = Pacer(60.0, clock=clock, sleep=clock.sleep)  # 1 call/s, 2 s of burst
    waits = [pacer.acquire() for _ in range(5)]
    assert waits[:2] == [0.0, 0.0]
    assert waits[2:] == pytest.approx([1.0, 1.0, 1.0])
    clock.now += 10  # idle: the bucket refills to its capacity, not beyond
    assert [pacer.acquire() for _ in range(3)] == pytest.approx([0.0, 0.0, 1.0])


def test_no_window_of_60_s_exceeds_the_limit() -> None:
    clock = FakeClock()
    pacer = Pacer(600.0 * HEADROOM, clock=clock, sleep=clock.sleep)
    stamps = []
    for _ in range(2000):
        pacer.acquire()
        stamps.append(clock.now)
    worst = max(sum(1 for t in stamps if start <= t < start + 60) for start in stamps)
    assert worst <= 600


def _box(**kwargs: object) -> BoxDestination:
    return BoxDestination(
        auth=BoxAuth(method="developer_token", developer_token=Secret("t")), base_url="http://pacing.test", **kwargs
    )


def test_each_instance_takes_its_share_and_requests_of_one_process_share_a_bucket() -> None:
    box = _box(calls_per_minute=1000, uploads_per_minute=240)
    # every function given Box's credentials (infra/iam.tf): collect_copy and restore_drill were
    # left out, so with all instances busy the app went 1.17x over Box's limit
    callers = {"upload_box", "verify", "collect_copy", "restore_drill"}
    instances = sum(f.max_instances for f in topology.FUNCTIONS if f.name in callers)
    assert instances_sharing(box) == instances
    calls, uploads = pacers(box)
    assert calls is not None and uploads is not None
    assert calls.rate_s * 60 == pytest.approx(1000 * HEADROOM / instances)
    assert uploads.rate_s * 60 == pytest.approx(240 * HEADROOM / instances)
    assert pacers(box) == (calls, uploads)  # the same buckets for every BoxHttp of the process


def test_pacing_can_be_turned_off_and_the_instance_count_set() -> None:
    assert pacers(_box(calls_per_minute=None, uploads_per_minute=None)) == (None, None)
    calls, _ = pacers(_box(calls_per_minute=1000, paced_instances=2))
    assert calls is not None and calls.rate_s * 60 == pytest.approx(450)


def test_uploads_are_whole_files_and_session_parts() -> None:
    up = "https://upload.box.com/api/2.0"
    assert _carries_content("POST", f"{up}/files/content", up)
    assert _carries_content("POST", f"{up}/files/123/content", up)
    assert _carries_content("PUT", f"{up}/files/upload_sessions/abc", up)
    assert not _carries_content("POST", f"{up}/files/upload_sessions", up)  # creating a session
    assert not _carries_content("OPTIONS", "https://api.box.com/2.0/files/content", up)  # preflight
