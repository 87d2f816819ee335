"""One private full stack (every function, the push dispatcher) for the fault tests: they kill
processes, stop servers and change host keys, which must not disturb the other tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devstack.stack import start_stack, stop_stack
from devstack.state import StackInfo
from tests.faults.kit import FaultKit


@pytest.fixture(scope="module")
def fault_stack(stack_root_factory: Callable[[str], Path]) -> Iterator[StackInfo]:
    root = stack_root_factory("faults")
    overlay = root / "overlay.yaml"
    # quick redelivery (the cloud's is 10..600 s); still 5 attempts before a dead letter
    overlay.write_text("pubsub: {minimum_backoff_s: 1, maximum_backoff_s: 4}\nverify: {self_heal: false}\n")
    info = start_stack(root / "stack", functions=True, without=("bigquery",), config_overlay=overlay)
    yield info
    stop_stack(root / "stack")


@pytest.fixture
def kit(fault_stack: StackInfo, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultKit]:
    from shared import runtime
    from shared.gcp import clients

    for key, value in fault_stack.env.items():
        monkeypatch.setenv(key, value)
    clients.reset()
    runtime.reset()
    yield FaultKit(fault_stack)
    clients.reset()
    runtime.reset()
