"""offsite demo: the whole pipeline on the local stack, verified (what `make demo` runs)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    keep: Annotated[bool, typer.Option("--keep", help="Leave the local stack running afterwards.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for every verify result.")] = 600.0,
    root: Annotated[Path | None, typer.Option("--root", help="State directory (default .offsite).")] = None,
) -> None:
    """Sample BigQuery tables → export → Box + SFTP → verify; exit 0 only if all are in sync."""
    from devstack.demo import run_demo
    from devstack.errors import StackError

    where = (root or Path(os.environ.get("OFFSITE_DEV_ROOT", ".offsite"))).absolute()
    try:
        code = run_demo(where, keep=keep, timeout_s=timeout, echo=typer.echo)
    except StackError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    raise typer.Exit(code)
