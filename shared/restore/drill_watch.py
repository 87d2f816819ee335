"""Following one restore drill from outside: its sample, each table's done marker, and a refusal
of its start in the run history. What ``offsite restore-drill run --wait`` and the HTTP
trigger's ``/restore-drill`` endpoints read (shared/restore/drill.py writes it)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shared import retry
from shared.config import Config
from shared.errors import TransientError
from shared.ids import Stage, Status
from shared.restore.drill_records import LOOKBACK_DAYS, DrillPick, drill_state


@dataclass(frozen=True)
class DrillProgress:
    """Where a drill stands: ``picks`` None until its sample is chosen; ``done`` table → marker
    (``{run_id, status, reason}``); ``refused`` the reason its start was refused or failed."""

    dataset: str
    drill_id: str
    picks: list[DrillPick] | None = None
    done: dict[str, dict[str, Any]] = field(default_factory=dict)
    refused: str | None = None

    @property
    def complete(self) -> bool:
        """Every table of the sample is reported (an empty sample: nothing to restore)."""
        return self.picks is not None and len(self.done) == len(self.picks)

    @property
    def ended(self) -> bool:
        return self.complete or self.refused is not None

    @property
    def proven(self) -> bool:
        return self.complete and bool(self.picks) and all(t["status"] == Status.RESTORE_VERIFIED for t in self.tables)

    @property
    def tables(self) -> list[dict[str, Any]]:
        """``[{table, run_id, status, reason}]`` per table of the sample (status None: not yet)."""
        return [{"table": p.table, "run_id": p.run_id, **_status(self.done.get(p.table))} for p in self.picks or []]

    def error(self, waited_s: float | None = None) -> str | None:
        """Why the drill proves nothing (yet): refused, nothing to restore, or (after a wait of
        ``waited_s``) not every table reported. None when complete."""
        if self.refused is not None:
            return self.refused
        if self.picks == []:
            return (
                f"no in_sync run of a table of {self.dataset} at the drill's destination in the last "
                f"{LOOKBACK_DAYS} days"
            )
        if self.complete or waited_s is None:
            return None
        waiting = [t["table"] for t in self.tables if t["status"] is None]
        return f"no result after {waited_s:.0f}s" + (f" for: {', '.join(waiting)}" if waiting else " (no sample)")

    def to_dict(self, waited_s: float | None = None) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "drill_id": self.drill_id,
            "started": self.picks is not None,
            "ended": self.ended,
            "proven": self.proven,
            "complete": self.complete,
            "tables": self.tables,
            "error": self.error(waited_s),
        }


def _status(marker: dict[str, Any] | None) -> dict[str, Any]:
    marker = marker or {}
    return {"status": marker.get("status"), "reason": marker.get("reason")}


def read_progress(
    config: Config, dataset: str, drill_id: str, *, message_id: str | None = None, since: dt.datetime | None = None
) -> DrillProgress:
    """The drill's progress now. With ``message_id`` (of its start message) and ``since`` (its
    publish time), a drill without a sample is also looked up as refused in the run history.
    Raises TransientError when GCS cannot be read now."""
    picks, done = drill_state(config, dataset, drill_id)
    refused = None
    if picks is None and message_id is not None and since is not None:
        refused = _refusal(config, message_id, since)
    return DrillProgress(dataset, drill_id, picks, done, refused)


def _refusal(config: Config, message_id: str, since: dt.datetime) -> str | None:
    """The reason the restore_drill function refused or failed the start message, from the run history."""
    from shared.reporting.history import read

    for r in read(config.state_bucket_name, since - dt.timedelta(minutes=1)):
        if r.stage == Stage.RESTORE_DRILL and r.message_id == message_id and r.status in ("rejected", "failed"):
            return f"{r.status}: {r.reason}"
    return None


def wait_for_drill(
    config: Config,
    dataset: str,
    drill_id: str,
    *,
    message_id: str | None,
    since: dt.datetime | None,
    timeout_s: float,
    poll_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    on_table: Callable[[str, dict[str, Any]], None] | None = None,
) -> DrillProgress:
    """Poll the drill until it ended (every table reported, nothing to restore, its start
    refused) or ``timeout_s`` passes; ``on_table(table, marker)`` once per table as it is
    reported. GCS away for a moment: what was read stands, and is read again at the next poll."""
    deadline = time.monotonic() + timeout_s
    told: set[str] = set()
    progress = DrillProgress(dataset, drill_id)
    while True:
        try:
            with retry.waits_end_by(deadline):  # a read retrying past the timeout would overrun it
                progress = read_progress(config, dataset, drill_id, message_id=message_id, since=since)
        except TransientError:
            pass
        for table, marker in progress.done.items():
            if on_table is not None and table not in told:
                told.add(table)
                on_table(table, marker)
        remaining = deadline - time.monotonic()
        if progress.ended or remaining <= 0:
            return progress
        sleep(min(poll_s, remaining))
