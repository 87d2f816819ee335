"""What a prune decided and did, per folder (``offsite prune`` prints it, the daily pass counts it)."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

from shared.config import Config


@dataclass(frozen=True)
class Outcome:
    """One run folder (or a mirrored bucket's dated versions folder) at one destination: what
    retention decided and did."""

    entry: str  # the dataset, export or bucket name
    destination: str
    path: str  # at the destination
    date: str
    action: str  # keep | protect | prune | pruned | deferred
    why: str
    files: int
    bytes: int


@dataclass
class PruneSummary:
    dry_run: bool
    outcomes: list[Outcome] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # (entry, destination) pairs not pruned, and why

    def count(self, action: str) -> int:
        return sum(1 for o in self.outcomes if o.action == action)


@dataclass
class PrunePass:
    """One prune (``offsite prune`` or a daily pass) as every target it visits sees it: the
    config, the tally, the time it is judged at and when it must stop starting removals."""

    config: Config
    summary: PruneSummary
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    stop_at: float | None = None  # time.monotonic() after which no new removal starts
    message_id: str | None = None

    @property
    def dry_run(self) -> bool:
        return self.summary.dry_run

    def out_of_time(self) -> bool:
        return self.stop_at is not None and time.monotonic() > self.stop_at
