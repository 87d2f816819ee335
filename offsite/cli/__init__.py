"""The `offsite` command: one Typer app, one module per command group."""

from __future__ import annotations

import os
import sys

import typer

from offsite.cli import (
    box,
    collect,
    config_cmd,
    demo,
    dev,
    dlq,
    drive,
    ingest,
    logs,
    mirror,
    ops,
    package,
    prune,
    restore,
    restore_drill,
    run,
    schedule,
    sftp,
)
from offsite.cli.common import new_app, operation_failed
from shared import log
from shared.errors import OffsiteError

app = new_app(
    help="offsite: BigQuery → Box / SFTP / Drive deliveries, GCS bucket mirrors, SQLite → BigQuery ingest, "
    "partner files collected from SFTP, and restores, each verified.",
    no_args_is_help=True,
)
app.add_typer(dev.app, name="dev", help="Run the local stack (emulators, servers, functions).")
app.add_typer(box.app, name="box", help="Browse the configured Box destination.")
app.add_typer(sftp.app, name="sftp", help="Operate on an SFTP partner's server.")
app.add_typer(drive.app, name="drive", help="Browse a configured Google Drive destination.")
app.add_typer(collect.app, name="collect", help="Collect files from partners' SFTP servers (status, ls, run).")
app.add_typer(dlq.app, name="dlq")
app.add_typer(config_cmd.app, name="config", help="Show and validate the configuration.")
app.add_typer(mirror.app, name="mirror", help="GCS bucket mirrors: compare, reconcile and restore (docs/mirror.md).")
app.add_typer(ingest.app, name="ingest", help="SQLite → BigQuery incremental ingest.")
app.add_typer(
    restore_drill.app, name="restore-drill", help="Restore drills: run one now, show the last proven restore."
)
run.register(app)
ops.register(app)
prune.register(app)
package.register(app)
demo.register(app)
restore.register(app)
schedule.register(app)
logs.register(app)


NO_CREDENTIALS = (
    "no Google Cloud credentials: run `gcloud auth application-default login` (or set "
    "GOOGLE_APPLICATION_CREDENTIALS to a service account key file); for the local stack, "
    "`. .offsite/env` after `offsite dev up`"
)


def main() -> None:
    """The `offsite` command. An error that no command turned into its one line ends it the same
    way, never as a traceback: an OffsiteError with the CLI's exit status (1: the operation
    failed, 2: asked wrongly), missing Application Default Credentials with exit 1."""
    import google.auth.exceptions

    _log_for_people()
    try:
        app(prog_name="offsite")  # also under `python -m offsite.cli`
    except OffsiteError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1 if operation_failed(exc) else 2)
    except google.auth.exceptions.DefaultCredentialsError:
        typer.echo(f"error: {NO_CREDENTIALS}", err=True)
        sys.exit(1)


def _log_for_people() -> None:
    """Someone running a command reads its output, not the INFO lines of the stage code it calls
    (fan_out's "not a table; skipped" while `offsite run` plans): the CLI logs warnings and
    errors only, as readable lines on a terminal and JSON otherwise. OFFSITE_LOG_LEVEL and
    OFFSITE_LOG_FORMAT still choose (`OFFSITE_LOG_LEVEL=info` shows every line)."""
    log.configure(
        fmt=os.environ.get("OFFSITE_LOG_FORMAT") or ("console" if sys.stderr.isatty() else "json"),
        level=os.environ.get("OFFSITE_LOG_LEVEL") or "warning",
    )
