"""What the dispatcher delivers where: one :class:`Route` per subscription, kept in a JSON file.

``devstack.stack`` writes ``<root>/push-routes.json`` when the stack starts; the dispatcher
reads it at start. Everything a route holds mirrors the cloud: the push endpoint, the ack
deadline (the push request timeout), the retry policy's backoff bounds, the dead-letter
policy, and the most concurrent requests the function can take (max instances × requests per
instance, see :attr:`shared.topology.FunctionSpec.max_concurrent_requests`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from devstack.errors import StackError

ROUTES_FILE = "push-routes.json"
DOORBELL_PREFIX = "doorbell-"  # the emulator's own push subscription on each routed topic (dispatcher.py)
ENV_CONCURRENCY = "OFFSITE_DEV_PUSH_CONCURRENCY"  # e.g. "export_table=100,transfer_sftp=2"


@dataclass(frozen=True)
class Route:
    """One subscription the dispatcher delivers."""

    subscription: str  # short id of the emulator's pull subscription
    function: str
    endpoint: str  # full URL the push body is POSTed to
    dead_letter_topic: str
    ack_deadline_s: int
    minimum_backoff_s: float
    maximum_backoff_s: float
    max_delivery_attempts: int
    concurrency: int
    topic: str = ""  # the subscription's topic: its doorbell (``DOORBELL_PREFIX + topic``) wakes the route

    def backoff_s(self, attempt: int) -> int:
        """Seconds before redelivery after failed attempt ``attempt`` (1-based): doubling, capped.

        Whole seconds: the emulator's modifyAckDeadline takes integer seconds (at least 1).
        """
        raw = self.minimum_backoff_s * float(2 ** max(0, attempt - 1))
        return max(1, math.ceil(min(self.maximum_backoff_s, raw)))


def routes_path(root: Path) -> Path:
    return Path(root) / ROUTES_FILE


def write_routes(root: Path, routes: list[Route]) -> Path:
    """Write the routes atomically; returns the file's path."""
    path = routes_path(root)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([dataclasses.asdict(r) for r in routes], indent=2))
    tmp.replace(path)
    return path


def read_routes(root: Path) -> list[Route]:
    """The routes written by :func:`write_routes` (empty when there is no file)."""
    try:
        raw = json.loads(routes_path(root).read_text())
    except FileNotFoundError:
        return []
    return [Route(**item) for item in raw]


def concurrency_for(function: str, default: int, environ: Mapping[str, str] | None = None) -> int:
    """The function's concurrency limit: ``default`` (the topology's), or its override in
    ``OFFSITE_DEV_PUSH_CONCURRENCY`` (``name=N`` pairs, comma-separated) for local experiments."""
    raw = (os.environ if environ is None else environ).get(ENV_CONCURRENCY, "")
    for pair in filter(None, (p.strip() for p in raw.split(","))):
        name, _, value = pair.partition("=")
        if not value.strip().isdigit() or int(value) < 1:
            raise StackError(f"{ENV_CONCURRENCY}: {pair!r} is not NAME=N (N >= 1)", "e.g. export_table=100")
        if name.strip() == function:
            return int(value)
    return default
