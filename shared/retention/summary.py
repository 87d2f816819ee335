"""What a prune decided and did, per folder (``offsite prune`` prints it, the daily pass counts it)."""

from __future__ import annotations

from dataclasses import dataclass, field


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
