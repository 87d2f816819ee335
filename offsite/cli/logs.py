"""``offsite logs``: the deployed functions' log lines in Cloud Logging, filtered by what every
line carries (run_id, table, destination: structured JSON, docs/operations.md).

It runs ``gcloud logging read`` (the Google Cloud CLI does the authentication); ``--print``
shows that command instead. The local stack's logs: ``offsite dev logs``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from typing import Annotated

import typer

from offsite.cli.common import ConfigOption, load_cli_config
from offsite.cli.ops import parse_since
from offsite.cli.output import JsonOption, print_line
from shared.topology import FUNCTIONS

SEVERITIES = ("DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL")
COLUMNS = (
    "table(timestamp,severity,resource.labels.service_name:label=FUNCTION,jsonPayload.run_id:label=RUN,"
    "jsonPayload.table:label=TABLE,jsonPayload.destination:label=DESTINATION,jsonPayload.message:label=MESSAGE)"
)


def register(app: typer.Typer) -> None:
    """Add ``logs`` to the main app."""
    app.command("logs")(logs)


def log_filter(
    functions: list[str], run_id: str | None, table: str | None, destination: str | None, severity: str
) -> str:
    """The Cloud Logging filter: offsite's Cloud Run services (or the named ones), then each field given."""
    services = [f.deployed_name for f in FUNCTIONS if not functions or f.name in functions]
    names = " OR ".join(f'"{s}"' for s in services)
    parts = ['resource.type="cloud_run_revision"', f"resource.labels.service_name=({names})"]
    for field, value in (("run_id", run_id), ("table", table), ("destination", destination)):
        if value is not None:
            parts.append(f"jsonPayload.{field}={_quoted(value)}")
    if severity != "DEFAULT":
        parts.append(f"severity>={severity}")
    return " AND ".join(parts)


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def logs(
    function: Annotated[
        list[str] | None, typer.Option("--function", "-f", help="Only this function (repeatable), e.g. fan_out.")
    ] = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Only lines of this run.")] = None,
    table: Annotated[str | None, typer.Option("--table", help="Only lines about this table.")] = None,
    destination: Annotated[str | None, typer.Option("--destination", help="Only lines about this destination.")] = None,
    severity: Annotated[
        str, typer.Option("--severity", help="This severity and above: INFO, WARNING, ERROR…")
    ] = "DEFAULT",
    since: Annotated[str, typer.Option("--since", help="How far back: 30m, 12h, 7d, 2w.")] = "1h",
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many lines, newest first.")] = 200,
    print_only: Annotated[bool, typer.Option("--print", help="Print the gcloud command; run nothing.")] = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Log lines of the deployed functions (newest first), through `gcloud logging read`."""
    known = [f.name for f in FUNCTIONS]
    unknown = [f for f in function or [] if f not in known]
    if unknown:
        typer.echo(
            f"error: --function: {unknown[0]!r} is not a function (expected one of {', '.join(known)})", err=True
        )
        raise typer.Exit(2)
    if severity.upper() not in SEVERITIES:
        typer.echo(f"error: --severity: {severity!r} is not one of {', '.join(SEVERITIES)}", err=True)
        raise typer.Exit(2)
    try:
        window = parse_since(since)
    except typer.BadParameter as exc:
        typer.echo(f"error: --since: {exc}", err=True)
        raise typer.Exit(2) from None
    cfg = load_cli_config(config)
    command = [
        "gcloud", "logging", "read", log_filter(function or [], run_id, table, destination, severity.upper()),
        f"--project={cfg.project}", f"--freshness={int(window.total_seconds())}s", f"--limit={limit}",
        "--format=json" if as_json else f"--format={COLUMNS}",
    ]  # fmt: skip
    if print_only:
        print_line(shlex.join(command))
        return
    if os.environ.get("PUBSUB_EMULATOR_HOST"):  # `. .offsite/env`: gcloud would ask the real Cloud Logging
        typer.echo(
            "error: this shell points at the local stack (PUBSUB_EMULATOR_HOST is set), which has no Cloud"
            " Logging; its functions' logs: offsite dev logs [FUNCTION] [-f]",
            err=True,
        )
        raise typer.Exit(1)
    if shutil.which("gcloud") is None:
        typer.echo("error: gcloud not found: install the Google Cloud CLI, or use --print", err=True)
        raise typer.Exit(1)
    raise typer.Exit(subprocess.run(command, check=False).returncode)
