"""Large objects: Box upload sessions through the mirror route, transfers longer than one
invocation (checkpoint + continuation), and an object replaced while it is being copied."""

from __future__ import annotations

import os
from collections.abc import Callable

from tests.mirror.conftest import MirrorStack, sha1

SIZE = 21_000_000  # above Box's 20 MB session minimum: 3 parts of 8 MiB
NAME = "models/v2/big model ✓.bin"


def test_a_large_object_arrives_whole_across_invocations(mirror_factory: Callable[..., MirrorStack]) -> None:
    m = mirror_factory(destinations=["box"], box={"parallel_parts": 1})
    data = os.urandom(SIZE)
    m.finalized(m.put(NAME, data), budget_s=0.0)  # at most a part per invocation, then a checkpoint
    assert m.copies("box") == {}  # not committed yet
    assert m.continuations(budget_s=0.0) >= 1
    assert m.copies("box") == {NAME: sha1(data)}
    assert m.stat(NAME).metadata["sha1"] == sha1(data)


def test_an_object_replaced_while_copied_ends_as_its_newer_generation(
    mirror_factory: Callable[..., MirrorStack],
) -> None:
    m = mirror_factory(destinations=["box"], box={"parallel_parts": 1})
    old, new = os.urandom(SIZE), os.urandom(SIZE)
    m.finalized(m.put(NAME, old), budget_s=0.0)  # the old generation is partly in Box
    replaced = m.put(NAME, new)
    m.continuations(budget_s=0.0)  # the old generation's continuation is stale now: ignored
    assert m.copies("box") == {}
    m.finalized(replaced, budget_s=0.0)
    m.continuations(budget_s=0.0)
    assert m.copies("box") == {NAME: sha1(new)}
