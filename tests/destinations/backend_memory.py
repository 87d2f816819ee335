from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.destinations.memory import MemoryDestination


def destination(request: pytest.FixtureRequest) -> Iterator[MemoryDestination]:
    yield MemoryDestination()
