"""One private full stack (every function, the push dispatcher) for the fault tests: they kill
processes, stop servers and change host keys, which must not disturb the other tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devstack.state import StackInfo
from tests.faults.kit import FaultKit
from tests.private_stacks import private_stack


@pytest.fixture(scope="module")
def fault_stack(stack_root_factory: Callable[[str], Path]) -> Iterator[StackInfo]:
    # quick redelivery (the cloud's is 10..600 s); still 5 attempts before a dead letter
    overlay = "pubsub: {minimum_backoff_s: 1, maximum_backoff_s: 4}\nverify: {self_heal: false}\n"
    with private_stack(stack_root_factory, "faults", overlay, functions=True, without=("bigquery",)) as info:
        yield info


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
