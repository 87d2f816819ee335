"""``offsite run``: start an export by hand, exactly as Cloud Scheduler would.

    offsite run --dataset sales [--tables orders,customers] [--destinations box,sftp:acme] [--format AVRO]
    offsite run --export orders_daily [--date 2025-01-08]
    offsite run ... --wait            # then wait for every table's _manifest.json

It publishes one export request (JSON) on ``export-requests`` — the same message
``gcloud pubsub topics publish export-requests --message=...`` would — with an explicit
``run_id`` so it can print it (a run id derived from the Pub/Sub message id is only known
inside fan_out). Arguments go through the same parser and config checks as fan_out.
Environment: as for the functions (``OFFSITE_CONFIG``; ``. .offsite/env`` on the local stack).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Annotated, Any

import typer

from offsite.cli.common import ConfigOption, load_cli_config
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
    body: dict[str, Any] = {}
    if dataset is not None:
        body["dataset"] = dataset
    if tables is not None:
        body["tables"] = [t.strip() for t in tables.split(",") if t.strip()] or tables
    if export is not None:
        body["export"] = export
    if date is not None:
        body["date"] = date
    if destinations is not None:
        body["destinations"] = [d.strip() for d in destinations.split(",") if d.strip()] or destinations
    if fmt is not None:
        body["format"] = fmt
    body["run_id"] = run_id
    return body


def _rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def run(
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Export whole tables of this configured dataset.")
    ] = None,
    tables: Annotated[
        str | None, typer.Option("--tables", help="Comma-separated tables (default: every table).")
    ] = None,
    export: Annotated[str | None, typer.Option("--export", help="Run this configured query export.")] = None,
    date: Annotated[
        str | None, typer.Option("--date", help="YYYY-MM-DD (default: today in the schedule's time zone).")
    ] = None,
    destinations: Annotated[
        str | None, typer.Option("--destinations", help="e.g. box,sftp:acme (default: from the config).")
    ] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="PARQUET, AVRO, CSV or NEWLINE_DELIMITED_JSON.")] = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Name the run (default: a new r + 12 hex id).")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until every table's manifest is written.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds --wait waits at most.")] = 900.0,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    config: ConfigOption = None,
) -> None:
    """Publish an export request on export-requests and print its run id."""
    from shared.stages.fan_out import check_request, new_run_id

    body = request_body(
        dataset=dataset,
        tables=tables,
        export=export,
        date=date,
        destinations=destinations,
        fmt=fmt,
        run_id=run_id or new_run_id(),
    )
    data = json.dumps(body).encode()
    try:
        request = ExportRequest.from_json(data)
        cfg = load_cli_config(config)
        check_request(request, cfg)
    except RejectedInput as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    assert request.run_id is not None
    try:
        from shared.gcp import pubsub
        from shared.topology import EXPORT_REQUESTS

        published_at = dt.datetime.now(dt.UTC)
        message_id = pubsub.publish(EXPORT_REQUESTS, data, origin="offsite-run")
    except OffsiteError as exc:
        typer.echo(f"error: publishing the request failed: {exc}", err=True)
        raise typer.Exit(1) from None
    if json_out:
        typer.echo(json.dumps({"run_id": request.run_id, "message_id": message_id, "request": body}))
    else:
        typer.echo(f"run_id: {request.run_id}")
        typer.echo(f"published on {EXPORT_REQUESTS} (message {message_id}): {data.decode()}")
    if wait:
        ok = wait_for_manifests(request, cfg, published_at, timeout, quiet=json_out)
        raise typer.Exit(0 if ok else 1)


def expected_exports(request: ExportRequest, cfg: Config, published_at: dt.datetime) -> list[TableExport]:
    """What fan_out will publish for this request (its plan, with our publish time)."""
    from shared.gcp.bigquery import warehouse
    from shared.stages.fan_out import plan

    wh = warehouse(cfg.shard_size_bytes) if request.dataset else None
    assert request.run_id is not None
    return plan(request, cfg, wh, run_id=request.run_id, publish_time=_rfc3339(published_at))


def wait_for_manifests(
    request: ExportRequest, cfg: Config, published_at: dt.datetime, timeout_s: float, *, quiet: bool = False
) -> bool:
    """Poll GCS until every expected ``_manifest.json`` exists; False (and a list) on timeout."""
    from shared.gcp import gcs
    from shared.manifest import Manifest

    try:
        # The scheduled day comes from the publish time; around midnight the next second may
        # already be the next day, so both candidates are watched.
        candidates = expected_exports(request, cfg, published_at) + expected_exports(
            request, cfg, dt.datetime.now(dt.UTC)
        )
    except OffsiteError as exc:
        typer.echo(f"error: cannot tell which manifests to wait for: {exc}", err=True)
        return False
    pending: dict[str, list[str]] = {}
    for task in candidates:
        names = pending.setdefault(task.source.label, [])
        if task.prefix + "_manifest.json" not in names:
            names.append(task.prefix + "_manifest.json")
    deadline = time.monotonic() + timeout_s
    while pending:
        for label, names in list(pending.items()):
            for name in names:
                data = gcs.read_bytes(cfg.bucket, name)
                if data is None:
                    continue
                manifest = Manifest.from_json(data, name)
                if not quiet:
                    typer.echo(
                        f"done: {label}: {manifest.row_count} rows in {len(manifest.files)} files, gs://{cfg.bucket}/{name}"
                    )
                del pending[label]
                break
        if not pending:
            break
        if time.monotonic() > deadline:
            typer.echo(f"error: no manifest after {timeout_s:.0f}s for: {', '.join(sorted(pending))}", err=True)
            typer.echo("hint: `offsite status` and the function logs show rejected or failed exports", err=True)
            return False
        time.sleep(1.0)
    return True
