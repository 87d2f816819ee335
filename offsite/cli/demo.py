"""offsite demo: the whole pipeline on the local stack, verified (what `make demo` runs).

While it waits, a live table shows each run folder's export and each delivery (status, files,
bytes, rate); when the output is not a terminal, one line per change instead. Then the
summary: one line per run folder and destination, and the verdict. ``--json`` prints the
outcome as one JSON document on stdout (the progress goes to stderr).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from offsite.cli.output import JsonOption, print_json

if TYPE_CHECKING:
    from devstack.demo_summary import Progress


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    keep: Annotated[bool, typer.Option("--keep", help="Leave the local stack running afterwards.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for every verify result.")] = 600.0,
    root: Annotated[Path | None, typer.Option("--root", help="State directory (default .offsite).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Sample BigQuery tables → export → Box + SFTP → verify; exit 0 only if all are in sync."""
    from devstack.demo import run_demo
    from devstack.errors import StackError
    from offsite.cli.progress import DemoBoard

    # The steps the demo runs in this process (ingest, restore) log only warnings, as every
    # command does (offsite.cli.main); the stack's functions keep their own logs (`offsite dev logs`).
    where = (root or Path(os.environ.get("OFFSITE_DEV_ROOT", ".offsite"))).absolute()
    try:
        if as_json:
            code = run_demo(
                where,
                keep=keep,
                timeout_s=timeout,
                echo=lambda line: typer.echo(line, err=True),
                report=lambda state: print_json(outcome(state)),
            )
        else:
            code = run_demo(where, keep=keep, timeout_s=timeout, echo=typer.echo, view=DemoBoard("offsite demo"))
    except StackError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    raise typer.Exit(code)


def outcome(state: Progress) -> dict[str, Any]:
    """The demo's result as JSON: every delivery with its status, and the verdict."""
    deliveries = []
    for d in sorted(state.deliveries, key=lambda x: (x.run_id, x.source, x.destination)):
        r = d.result
        deliveries.append(
            {
                "run_id": d.run_id,
                "source": d.source,
                "date": d.date,
                "destination": d.destination,
                "status": r.status if r else None,
                "check": r.check if r else None,
                "files_present": r.files_present if r else None,
                "files_expected": r.files_expected if r else d.files_expected,
                "bytes_present": r.bytes_present if r else None,
                "duration_s": r.duration_s if r else None,
                "reason": r.reason if r and r.status != "in_sync" else None,
            }
        )
    failures = {
        run_id: {"status": f.status, "stage": f.stage, "reason": f.reason} for run_id, f in state.run_failures.items()
    }
    return {
        "all_in_sync": state.all_in_sync,
        "deliveries": deliveries,
        "run_failures": failures,
        "missing_runs": list(state.missing_runs),
    }
