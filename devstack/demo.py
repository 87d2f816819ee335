"""The demo behind `make demo`: sample tables → fan out → export → Box + SFTP → verified.

Starts the local stack (or uses the one already running in ``root``), seeds the sample
dataset, publishes one dataset-mode request (every table → Box and SFTP) and one query-mode
request (``orders_daily`` for a day → SFTP), waits for every (run, destination) result and
prints the summary. Exit status 0 only when every delivery is ``in_sync`` with ``check: sha1``.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from devstack.errors import StackError
from devstack.stack import StackInfo, is_running, load_stack, start_stack, stop_stack

if TYPE_CHECKING:
    from devstack.demo_summary import Progress
    from shared.messages import ExportRequest

QUERY_DATE = dt.date(2025, 1, 8)  # the sample orders span January 2025


class ProgressView(Protocol):
    """What shows the demo's progress while it waits (``offsite demo`` passes a live table)."""

    def __enter__(self) -> ProgressView: ...

    def __exit__(self, *exc: object) -> None: ...

    def show(self, progress: Progress) -> None: ...


class CountingView:
    """The plain default: one ``k/n deliveries verified`` line each time the count changes."""

    def __init__(self, echo: Callable[[str], None]) -> None:
        self.echo = echo
        self.last = ""

    def __enter__(self) -> CountingView:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def show(self, progress: Progress) -> None:
        done = sum(1 for d in progress.deliveries if d.result is not None)
        line = f"  {done}/{len(progress.deliveries)} deliveries verified"
        if line != self.last:
            self.last = line
            self.echo(line)


def _use_stack_env(info: StackInfo) -> None:
    from shared import runtime
    from shared.gcp import clients

    os.environ.update(info.env)
    clients.reset()
    runtime.reset()


def seed_sample_data(info: StackInfo) -> dict[str, int]:
    """Point this process at ``info``'s emulators and load the sample dataset ``sales``."""
    from devstack.sample_data import seed
    from shared.gcp import clients

    _use_stack_env(info)
    return seed(clients.bigquery_client(), info.project, "sales")


def create_drill_scratch(info: StackInfo) -> list[str]:
    """The scratch datasets the stack's config restores drills into (``restore_drill.to``): on
    Google Cloud the operator creates them (docs/operations.md); on the local stack the seed does."""
    from shared import runtime
    from shared.gcp import clients

    _use_stack_env(info)
    config = runtime.config()
    names = sorted({d.restore_drill.scratch(config.project) for d in config.datasets if d.restore_drill})
    for name in names:
        clients.bigquery_client().create_dataset(name, exists_ok=True)
    return names


def seed_mirrored_buckets(info: StackInfo) -> dict[str, int]:
    """Point this process at ``info``'s emulators and put sample objects in its mirrored buckets."""
    from devstack import mirror_sample
    from shared import runtime

    _use_stack_env(info)
    return mirror_sample.seed_mirrored_buckets(runtime.config())


def _already_running(root: Path) -> bool:
    try:
        return is_running(load_stack(root))
    except StackError:
        return False


def run_demo(
    root: Path,
    *,
    keep: bool = False,
    timeout_s: float = 600.0,
    echo: Callable[[str], None] = print,
    view: ProgressView | None = None,
    report: Callable[[Progress], None] | None = None,
) -> int:
    """Run the demo; returns the process exit status.

    ``view`` shows the progress while it waits (default: a count of verified deliveries);
    ``report`` prints the outcome (default: :func:`summary_lines` through ``echo``).
    """
    from devstack.demo_summary import summary_lines, wait_for_results
    from shared import runtime

    reuse = _already_running(root)
    started = time.monotonic()
    info = start_stack(root)
    echo(f"local stack {'already running' if reuse else 'started'} in {info.root} ({time.monotonic() - started:.1f} s)")
    try:
        rows = seed_sample_data(info)
        echo("seeded BigQuery sales: " + ", ".join(f"{t} ({n:,} rows)" for t, n in rows.items()))
        from devstack.ingest_demo import show_incremental_sync

        ingest_ok = show_incremental_sync(info, echo)  # SQLite → BigQuery: one initial, one incremental sync
        requests = _publish_exports(echo)
        collect_run = start_collect(info, echo)
        echo("waiting for export → Box + SFTP → verify ...")
        run_ids = [r.run_id for r in requests if r.run_id]
        with view or CountingView(echo) as shown:
            state = wait_for_results(runtime.config(), run_ids, timeout_s=timeout_s, on_poll=shown.show)
        if report is not None:
            report(state)
        else:
            echo("")
            for line in summary_lines(state):
                echo(line)
        collected = finish_collect(collect_run, echo, timeout_s=timeout_s)
        if not (state.all_in_sync and ingest_ok and collected):
            return 1
        from devstack.demo_restore import restore_one

        equal, line = restore_one(info, requests[0].run_id or "")
        echo(line)
        return 0 if equal else 1
    finally:
        if not (keep or reuse):
            stop_stack(root)
            echo("local stack stopped (use --keep to leave it running)")


def _publish_exports(echo: Callable[[str], None]) -> list[ExportRequest]:
    """The demo's two export requests (the sales dataset, and one day of the orders_daily query), published."""
    from shared.gcp import pubsub
    from shared.messages import ExportRequest
    from shared.stages.fan_out import new_run_id
    from shared.topology import EXPORT_REQUESTS

    requests = [
        ExportRequest(dataset="sales", run_id=new_run_id()),
        ExportRequest(export="orders_daily", date=QUERY_DATE, run_id=new_run_id()),
    ]
    for request in requests:
        pubsub.publish(EXPORT_REQUESTS, request, origin="offsite-demo")
        echo(f"published on {EXPORT_REQUESTS}: {request.to_json().decode()}")
    return requests


def start_collect(info: StackInfo, echo: Callable[[str], None]) -> str:
    """One collect run: sample partner files in the stack sshd's outbox, then {"collect": "toast"}."""
    from devstack.collect_seed import seed_partner_files
    from devstack.localconfig import COLLECT_JOB
    from shared.collect.messages import CollectRequest
    from shared.gcp import pubsub
    from shared.stages.fan_out import new_run_id
    from shared.topology import COLLECT_REQUESTS

    files = seed_partner_files(info)
    echo(f"partner outbox: {', '.join(p.name for p in files)}")
    request = CollectRequest(collect=COLLECT_JOB, run_id=new_run_id(), ignore_calendar=True)
    pubsub.publish(COLLECT_REQUESTS, request, origin="offsite-demo")
    echo(f"published on {COLLECT_REQUESTS}: {request.to_json().decode()}")
    return str(request.run_id)


def finish_collect(run_id: str, echo: Callable[[str], None], *, timeout_s: float) -> bool:
    """Wait for the collect run's result and print it; True when every file was collected."""
    from devstack.localconfig import COLLECT_JOB
    from shared import runtime
    from shared.collect.runs import wait_for_run

    result = wait_for_run(runtime.config().state_bucket_name, COLLECT_JOB, run_id, timeout_s=timeout_s)
    if result is None:
        echo(f"collect {COLLECT_JOB} {run_id}: no result within {timeout_s:.0f} s")
        return False
    echo(
        f"collect {COLLECT_JOB} {run_id}: status={result.status}, {result.files_present}/{result.files_expected} files, "
        f"{result.bytes_present:,} bytes → box, {result.duration_s or 0:.1f} s"
    )
    return result.status == "in_sync"
