"""What a prune decided and did, per folder (``offsite prune`` prints it, the daily pass counts it)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from shared import log
from shared.config import Config
from shared.errors import PermanentError

logger = log.get_logger(__name__)


@dataclass(frozen=True)
class Outcome:
    """One run folder (or a mirrored bucket's dated versions folder) at one destination: what
    retention decided and did."""

    entry: str  # the dataset, export or bucket name
    destination: str
    path: str  # at the destination
    date: str
    action: str  # keep | protect | prune | pruned | deferred | failed
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
    at: str | None = None  # the dataset table being pruned (where a pass stopped by a failure resumes)
    # told each dataset table as it starts (the daily pass saves it as the pair's cursor, so an
    # invocation stopped at its timeout mid-round loses at most the table it was in)
    on_table: Callable[[str], None] | None = None
    # count every folder's files and bytes (``offsite prune`` shows them); the daily pass lists
    # names only and measures what it prunes (shared/retention/catalog.py): half the Box calls
    sizes: bool = True

    @property
    def dry_run(self) -> bool:
        return self.summary.dry_run

    def out_of_time(self) -> bool:
        return self.stop_at is not None and time.monotonic() > self.stop_at

    def remove(self, removal: Callable[[], Outcome], failed: Callable[[str], Outcome]) -> None:
        """Add the outcome of one folder's ``removal``. A PermanentError (the destination refuses
        to remove that folder, e.g. a partner's file in it is not ours to delete) is that
        folder's outcome, ``failed``: the other folders of the target are still pruned."""
        try:
            outcome = removal()
        except PermanentError as exc:
            outcome = failed(f"could not remove: {exc}")
            logger.error("retention could not remove a folder", path=outcome.path, error=str(exc))
        self.summary.outcomes.append(outcome)

    def raise_failures(self, since: int) -> None:
        """PermanentError naming the folders that failed among the outcomes from ``since`` on
        (one target), once the target's other folders are done."""
        failed = [o for o in self.summary.outcomes[since:] if o.action == "failed"]
        if failed:
            first = failed[0]
            raise PermanentError(
                f"{first.entry} at {first.destination}: {len(failed)} folder(s) not pruned, "
                f"first {first.path}: {first.why}"
            )
