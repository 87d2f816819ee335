"""Which run folders a retention policy keeps (pure: no I/O).

For one table (or query export) at one destination, run folders are ordered newest first by
(date, start time): the run's date, then when the run started (its ``_run.json``), so a
same-day rerun is newer than the run it repeats. ``daily: N`` keeps the newest run folder of
each of the N newest days that have one; ``monthly: M`` the newest run folder of each of the M
newest months that have one (as restic's and borg's ``--keep-daily``/``--keep-monthly``).

Every other run folder is *prunable* only when it is older than the newest run folder that is
``in_sync`` at that destination and has no verify outcome still to come; the in_sync one is
found by :func:`prunable`'s ``is_in_sync``, asked lazily from the newest run folder down, so a
destination with nothing verified keeps everything.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from shared.config import Retention

T = TypeVar("T")
EPOCH = dt.datetime.min.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class Dated(Generic[T]):
    """A run folder as the policy sees it: its date, its start time (None: unknown), an id to
    break ties, and the caller's own item."""

    date: dt.date
    started: dt.datetime | None
    name: str
    item: T

    @property
    def order(self) -> tuple[dt.date, dt.datetime, str]:
        return (self.date, self.started or EPOCH, self.name)


@dataclass(frozen=True)
class Decision(Generic[T]):
    """What happens to one run folder, and why (printed by ``offsite prune``, logged, reported)."""

    entry: Dated[T]
    action: str  # "keep" | "prune" | "protect"
    why: str


def newest_first(entries: Sequence[Dated[T]]) -> list[Dated[T]]:
    return sorted(entries, key=lambda e: e.order, reverse=True)


def kept(entries: Sequence[Dated[T]], retention: Retention) -> dict[str, str]:
    """Name → why kept, for the run folders the policy keeps by itself."""
    reasons: dict[str, list[str]] = {}
    days: set[dt.date] = set()
    months: set[tuple[int, int]] = set()
    for entry in newest_first(entries):
        month = (entry.date.year, entry.date.month)
        if entry.date not in days and len(days) < retention.daily:
            days.add(entry.date)
            reasons.setdefault(entry.name, []).append(f"daily {len(days)} of {retention.daily}")
        if month not in months and len(months) < retention.monthly:
            months.add(month)
            reasons.setdefault(entry.name, []).append(f"monthly {len(months)} of {retention.monthly}")
    return {name: "kept: " + ", ".join(why) for name, why in reasons.items()}


def decide(
    entries: Sequence[Dated[T]],
    retention: Retention,
    *,
    is_in_sync: Callable[[Dated[T]], bool],
    is_settled: Callable[[Dated[T]], bool],
) -> list[Decision[T]]:
    """A decision for every entry, newest first (see the module docstring)."""
    keep = kept(entries, retention)
    ordered = newest_first(entries)
    decisions: list[Decision[T]] = []
    anchor: Dated[T] | None = None  # the newest in_sync run folder seen so far
    for entry in ordered:
        if entry.name in keep:
            decisions.append(Decision(entry, "keep", keep[entry.name]))
        elif anchor is None:
            decisions.append(Decision(entry, "protect", "protected: no newer run folder is in_sync here"))
        elif not is_settled(entry):
            decisions.append(Decision(entry, "protect", "protected: its delivery or verification is not finished"))
        else:
            decisions.append(Decision(entry, "prune", f"newer run folder {anchor.name} is in_sync here"))
        if anchor is None and is_in_sync(entry):
            anchor = entry
    return decisions
