"""The progress display of ``offsite run --wait`` and ``offsite demo``.

A :class:`Board` shows one :class:`Row` per run folder and stage (export) or destination
(deliver, then verify): status, files, bytes and rate. On a terminal it is a rich ``Live``
table redrawn on every poll; anywhere else (pipes, logs, tests) it prints one plain line each
time a row changes, and nothing in place.

The rows come from what the commands already poll: the manifests and the run history
(``run --wait``, :mod:`offsite.cli.run_wait`) and :func:`devstack.demo_summary.progress` (the demo). The rate of a verified delivery is the bytes
at the destination over the run's duration (start of the export to the verify result): an
end-to-end figure, not the link speed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from rich.live import Live
from rich.table import Table
from rich.text import Text

from offsite.cli.output import EMPTY, build_table, console, human_bytes, print_line

if TYPE_CHECKING:
    from devstack.demo_summary import Progress
    from shared.messages import VerifyResult

COLUMNS = ("RUN", "SOURCE", "STAGE", "DESTINATION", "STATUS", "FILES", "BYTES", "RATE")


@dataclass(frozen=True)
class Row:
    """One line of the display: a run folder's export, or its delivery to one destination."""

    run_id: str
    source: str
    stage: str
    destination: str | None
    status: str
    files: str | None = None
    bytes: int | None = None
    rate: float | None = None  # bytes per second

    @classmethod
    def verified(cls, run_id: str, source: str, destination: str, result: VerifyResult) -> Row:
        """A delivery's row once verify reported: files present of expected, bytes present, and
        the rate over the run's duration."""
        rate = result.bytes_present / result.duration_s if result.duration_s else None
        files = f"{result.files_present}/{result.files_expected}"
        return cls(run_id, source, "verify", destination, str(result.status), files, result.bytes_present, rate)

    @property
    def key(self) -> tuple[str, str, str]:
        """What stays the same while the row moves on (a delivery goes from deliver to verify)."""
        return (self.run_id, self.source, self.destination or self.stage)

    def cells(self) -> list[Any]:
        rate = f"{human_bytes(self.rate)}/s" if self.rate is not None else None
        size = human_bytes(self.bytes) if self.bytes is not None else None
        return [self.run_id, self.source, self.stage, self.destination, self.status, self.files, size, rate]

    def plain(self) -> str:
        """The row as one line: ``r…  sales.orders  verify → box: in_sync  files 1/1  16.2 KB  5.1 KB/s``."""
        where = f"{self.stage} → {self.destination}" if self.destination else self.stage
        parts = [f"{self.run_id}  {self.source}  {where}: {self.status}"]
        if self.files is not None:
            parts.append(f"files {self.files}")
        if self.bytes is not None:
            parts.append(human_bytes(self.bytes))
        if self.rate is not None:
            parts.append(f"{human_bytes(self.rate)}/s")
        return "  ".join(parts)


class Board:
    """A live table on a terminal; plain line updates otherwise. Use it as a context manager."""

    def __init__(self, title: str, *, plain_rows: bool = True) -> None:
        self.title = title
        self.plain_rows = plain_rows  # off: only log() lines are printed when not on a terminal
        self._console = console()
        self._live: Live | None = None
        self._shown: dict[tuple[str, str, str], Row] = {}
        self._rows: list[Row] = []
        self._started = time.monotonic()

    @property
    def is_live(self) -> bool:
        return self._console.is_terminal

    def __enter__(self) -> Board:
        if self.is_live:
            self._live = Live(self._render(), console=self._console, refresh_per_second=4, transient=False)
            self._live.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._live is not None:
            self._live.update(self._render(), refresh=True)
            self._live.stop()
            self._live = None

    def update(self, rows: Sequence[Row]) -> None:
        """Show ``rows`` (the whole current state): redraw the table, or print the rows that changed."""
        self._rows = list(rows)
        if self._live is not None:
            self._live.update(self._render())
            return
        if not self.plain_rows:
            return
        for row in rows:
            if self._shown.get(row.key) != row:
                self._shown[row.key] = row
                print_line(row.plain())

    def log(self, text: str) -> None:
        """A line of text (above the live table on a terminal)."""
        if self._live is not None:
            self._live.console.print(Text(text), soft_wrap=True)
        else:
            print_line(text)

    def _render(self) -> Table:
        table = build_table(COLUMNS, [row.cells() for row in self._rows], right={"FILES", "BYTES", "RATE"}, plain=False)
        table.title = f"{self.title} ({time.monotonic() - self._started:.0f} s)"
        return table


def demo_rows(state: Progress) -> list[Row]:
    """Rows for the demo's progress: per run folder its export, then each destination."""
    rows: list[Row] = []
    exported: set[tuple[str, str]] = set()
    for d in sorted(state.deliveries, key=lambda x: (x.run_id, x.source, x.destination)):
        if (d.run_id, d.source) not in exported:
            exported.add((d.run_id, d.source))
            written = d.files_expected is not None
            files = str(d.files_expected) if written else None
            rows.append(
                Row(d.run_id, d.source, "export", None, "done" if written else "exporting", files, d.bytes_expected)
            )
        r = d.result
        if r is None:
            status = "delivering" if d.files_expected is not None else "waiting"
            rows.append(Row(d.run_id, d.source, "deliver", d.destination, status))
            continue
        rows.append(Row.verified(d.run_id, d.source, d.destination, r))
    for run_id in state.missing_runs:
        failure = state.run_failures.get(run_id)
        rows.append(Row(run_id, EMPTY, "fan_out", None, failure.status if failure else "waiting"))
    for run_id, failure in sorted(state.run_failures.items()):
        if run_id not in state.missing_runs:
            rows.append(Row(run_id, EMPTY, str(failure.stage or "run"), None, failure.status))
    return rows


class DemoBoard(Board):
    """The demo's view (devstack.demo.ProgressView): the board fed with :func:`demo_rows`."""

    def __enter__(self) -> DemoBoard:
        super().__enter__()
        return self

    def show(self, progress: Progress) -> None:
        self.update(demo_rows(progress))
