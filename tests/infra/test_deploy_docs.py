"""docs/deploy.md's inventory and sizing tables name what shared/topology.py (and so infra/) deploys."""

from __future__ import annotations

import re

from shared import topology
from tests.infra.conftest import REPO

DEPLOY = (REPO / "docs" / "deploy.md").read_text()


def _row(label: str) -> set[str]:
    """The `names` in the "What it creates" row starting with ``label``."""
    match = re.search(rf"^\| {re.escape(label)}[^|]*\| (.*) \|$", DEPLOY, re.M)
    assert match, f"docs/deploy.md has no {label!r} row"
    return set(re.findall(r"`([a-z-]+)`", match.group(1)))


def _deployed(name: str) -> str:
    return name.replace("_", "-")


def test_inventory_names_every_topic_function_and_feed() -> None:
    assert set(topology.TOPICS) <= _row("Topics")
    assert {_deployed(fn.name) for fn in topology.FUNCTIONS} <= _row("Functions")
    feeds = {s.name for s in topology.subscriptions() if s.trigger.kind == "pubsub"}
    assert feeds <= _row("Pub/Sub feeds")


def test_sizing_table_is_the_topology() -> None:
    rows = {
        name: (int(memory), int(concurrency))
        for name, memory, concurrency in re.findall(r"^\| `([a-z-]+)` \| (\d+)M \| (\d+) \|", DEPLOY, re.M)
    }
    assert rows == {_deployed(fn.name): (fn.memory_mb, fn.concurrency) for fn in topology.FUNCTIONS}
