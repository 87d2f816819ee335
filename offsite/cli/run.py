"""``offsite run``: start an export by hand, exactly as Cloud Scheduler would.

    offsite run --dataset sales [--tables orders,customers] [--destinations box,sftp:acme] [--format AVRO]
    offsite run --export orders_daily [--date 2025-01-08]
    offsite run ... --wait            # then wait until every table is verified at every destination
    offsite run ... --until exported  # ... or only until every table's _manifest.json is written
    offsite run ... --json            # one JSON document (after waiting, with --wait)

The wait and its live progress: :mod:`offsite.cli.run_wait`.

It publishes one export request (JSON) on ``export-requests`` — the same message
``gcloud pubsub topics publish export-requests --message=...`` would — with an explicit
``run_id`` so it can print it (a run id derived from the Pub/Sub message id is only known
inside fan_out). Arguments go through the same parser and config checks as fan_out.
Environment: as for the functions (``OFFSITE_CONFIG``; ``. .offsite/env`` on the local stack).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from offsite.cli.common import ConfigOption, exit_on_error, load_cli_config
from offsite.cli.output import JsonOption, print_json, print_line
from offsite.cli.run_wait import Until, expected_exports, wait_for_run
from shared.config import Config
from shared.errors import OffsiteError, RejectedInput
from shared.messages import ExportRequest, TableExport


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.command("run")(run)


def request_body(
    *,
    dataset: str | None,
    tables: str | None,
    export: str | None,
    date: str | None,
    destinations: str | None,
    fmt: str | None,
    run_id: str,
) -> dict[str, Any]:
    """The export-requests JSON for these options (only what was given, plus the run id)."""
    given = {
        "dataset": dataset,
        "tables": _listed(tables),
        "export": export,
        "date": date,
        "destinations": _listed(destinations),
        "format": fmt,
    }
    return {**{key: value for key, value in given.items() if value is not None}, "run_id": run_id}


def _listed(text: str | None) -> list[str] | str | None:
    """A comma-separated option as a list; text with no item is kept as given (the request check names it)."""
    if text is None:
        return None
    return [item.strip() for item in text.split(",") if item.strip()] or text


def run(
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Export whole tables of this configured dataset.")
    ] = None,
    tables: Annotated[
        str | None, typer.Option("--tables", help="Comma-separated tables (default: every table).")
    ] = None,
    export: Annotated[str | None, typer.Option("--export", help="Run this configured query export.")] = None,
    date: Annotated[
        str | None,
        typer.Option(
            "--date", help="YYYY-MM-DD (default: the export's `date` day, today unless set, in its time zone)."
        ),
    ] = None,
    destinations: Annotated[
        str | None, typer.Option("--destinations", help="e.g. box,sftp:acme (default: from the config).")
    ] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="PARQUET, AVRO, CSV or NEWLINE_DELIMITED_JSON.")] = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Name the run (default: a new r + 12 hex id).")] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until every table is verified at every destination (see --until).")
    ] = False,
    until: Annotated[
        Until | None,
        typer.Option(
            "--until",
            help="With --wait (implied): 'verified' (default) or 'exported' (every table's manifest written).",
        ),
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds --wait waits at most.")] = 900.0,
    json_out: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Publish an export request on export-requests and print its run id.

    Exit 2 on a bad option (nothing is published). With --wait: exit 0 once every table is
    in_sync at every destination (--until exported: once every table's manifest is written); 1
    when a table's export failed or was rejected, a destination's verify result is final and not
    in_sync, or the timeout passes (each is printed)."""
    from shared.stages.fan_out import new_run_id

    body = request_body(
        dataset=dataset,
        tables=tables,
        export=export,
        date=date,
        destinations=destinations,
        fmt=fmt,
        run_id=run_id or new_run_id(),
    )
    wait = wait or until is not None
    data = json.dumps(body).encode()
    request, cfg, published_at, planned = _checked(data, config, wait=wait)
    with exit_on_error(1, what="publishing the request failed: "):
        from shared.gcp import pubsub
        from shared.topology import EXPORT_REQUESTS

        message_id = pubsub.publish(EXPORT_REQUESTS, data, origin="offsite-run")
    printed = {"run_id": request.run_id, "message_id": message_id, "topic": EXPORT_REQUESTS, "request": body}
    end = until or Until.VERIFIED
    _report(
        request, cfg, printed, published_at, planned, wait=end if wait else None, timeout_s=timeout, as_json=json_out
    )


def _checked(
    data: bytes, config: Path | None, *, wait: bool
) -> tuple[ExportRequest, Config, dt.datetime, list[TableExport]]:
    """The request as fan_out will read it, checked against the config, and (``wait``) the tables
    it will export; a bad request ends the command with exit 2 before anything is published."""
    from shared.stages.fan_out import check_request

    planned: list[TableExport] = []
    try:
        request = ExportRequest.from_json(data)
        cfg = load_cli_config(config)
        check_request(request, cfg)
        published_at = dt.datetime.now(dt.UTC)
        if wait:  # what to wait for, planned as fan_out will: a table BigQuery does not have is refused here
            planned = _plan(request, cfg, published_at)
    except RejectedInput as exc:
        typer.echo(f"error: {exc} (nothing was published)", err=True)
        raise typer.Exit(2) from None
    assert request.run_id is not None
    return request, cfg, published_at, planned


def _plan(request: ExportRequest, cfg: Config, published_at: dt.datetime) -> list[TableExport]:
    """:func:`expected_exports`, before anything is published; RejectedInput passes (exit 2), any
    other failure (BigQuery unreachable, access denied) ends the command with exit 1."""
    try:
        return expected_exports(request, cfg, published_at)
    except RejectedInput:
        raise
    except OffsiteError as exc:
        typer.echo(f"error: cannot tell which manifests to wait for: {exc} (nothing was published)", err=True)
        raise typer.Exit(1) from None


def _report(
    request: ExportRequest,
    cfg: Config,
    printed: dict[str, Any],
    published_at: dt.datetime,
    planned: list[TableExport],
    *,
    wait: Until | None,
    timeout_s: float,
    as_json: bool,
) -> None:
    """Print the published request (text, or one JSON document) and, with ``--wait``, wait for it."""
    if not as_json:
        print_line(f"run_id: {printed['run_id']}")
        print_line(
            f"published on {printed['topic']} (message {printed['message_id']}): {json.dumps(printed['request'])}"
        )
    elif not wait:
        print_json(printed)
    if wait is not None:
        waited = wait_for_run(request, cfg, published_at, planned, timeout_s, until=wait, show=not as_json)
        if as_json:
            print_json({**printed, **waited.to_dict()})
        raise typer.Exit(0 if waited.succeeded else 1)
