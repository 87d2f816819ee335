"""The fault book the local API servers share (Box, Drive): which injected fault fires on a call.

A fault targets an operation name (or ``any``) and fires on the next ``count`` matching calls,
after letting ``skip`` of them through. A ``delay`` fault only slows a call down, so every
matching delay fires, then at most one other fault (the one that decides the answer). Each
server's fault type adds its own actions and how it answers them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar


@dataclass
class FaultRule:
    """Which calls a fault fires on; subclasses add what it does."""

    operation: str
    action: str
    count: int = 1
    skip: int = 0

    def matches(self, operation: str) -> bool:
        return self.operation in ("any", operation)


F = TypeVar("F", bound=FaultRule)


class FaultBook(Generic[F]):
    """The active faults, consumed in the order they were added."""

    def __init__(self) -> None:
        self.faults: list[F] = []

    def add(self, fault: F) -> F:
        self.faults.append(fault)
        return fault

    def list(self) -> list[F]:
        return list(self.faults)

    def clear(self) -> None:
        self.faults.clear()

    def take(self, operation: str) -> list[F]:
        """The faults that fire on this call: every matching delay, then at most one other."""
        fired: list[F] = []
        terminal_taken = False
        for fault in list(self.faults):
            if not fault.matches(operation):
                continue
            if fault.action != "delay" and terminal_taken:
                continue
            if fault.skip > 0:
                fault.skip -= 1
                continue
            fault.count -= 1
            if fault.count <= 0:
                self.faults.remove(fault)
            fired.append(fault)
            terminal_taken = terminal_taken or fault.action != "delay"
        return fired
