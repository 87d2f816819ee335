"""Per-process singletons: one build, one object, also when the first calls arrive together
(a cold instance's concurrent first requests)."""

from __future__ import annotations

import functools
import time
from typing import Any

import pytest

from shared import runtime
from shared.gcp import clients
from shared.per_process import per_process
from tests.threads import together
from tests.unit import config_files

THREADS = 16  # a deployed instance's concurrency


def call_together(fn: Any, *args: Any) -> list[Any]:
    """``fn(*args)`` from THREADS threads released at the same moment; their results."""
    return together(*[functools.partial(fn, *args)] * THREADS)


def test_concurrent_first_calls_build_once_and_share_the_value() -> None:
    builds: list[tuple[str, int]] = []

    @per_process
    def slow(name: str, size: int) -> object:
        builds.append((name, size))
        time.sleep(0.05)  # long enough that unguarded callers would all miss the cache
        return object()

    first = call_together(slow, "a", 1)
    assert builds == [("a", 1)]
    assert len({id(v) for v in first}) == 1
    assert slow("b", 2) is not first[0]  # other arguments, another value
    assert slow(name="a", size=1) is not None  # keyword calls are keyed apart from positional ones
    assert builds == [("a", 1), ("b", 2), ("a", 1)]
    slow.cache_clear()
    assert slow("a", 1) is not first[0]


def test_a_failed_build_is_not_kept() -> None:
    attempts: list[int] = []

    @per_process
    def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("first build fails")
        return "built"

    with pytest.raises(RuntimeError):
        flaky()
    assert flaky() == "built"
    assert flaky() == "built"
    assert len(attempts) == 2


def test_a_builder_may_use_another_per_process_value() -> None:
    @per_process
    def inner() -> list[str]:
        return ["inner"]

    @per_process
    def outer() -> list[str]:
        return [*inner(), "outer"]

    assert call_together(outer)[0] == ["inner", "outer"]
    assert all(v is outer() for v in call_together(outer))


def test_the_runtime_config_is_one_object_under_concurrent_first_loads(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OFFSITE_CONFIG", str(config_files.write(tmp_path)))
    runtime.reset()
    try:
        loaded = call_together(runtime.config)
        assert len({id(c) for c in loaded}) == 1
        assert loaded[0] == config_files.load(tmp_path)
    finally:
        runtime.reset()


def test_clients_are_one_per_process_under_concurrent_first_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")  # never contacted: built only
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "p")
    clients.reset()
    try:
        built = call_together(clients.storage_client)
        assert len({id(c) for c in built}) == 1
    finally:
        clients.reset()
