"""``offsite ingest run|status|tables|reset|push``: the SQLite → BigQuery ingest's admin surface.

The same commands an app's sync admin endpoints offer (status, manual and per-table runs, the
table list), run next to the SQLite file on the app host (cron or a systemd timer); ``run
--report`` publishes the results as the function does. See docs/ingest.md.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from offsite.cli.common import ConfigOption, exit_on_error, load_cli_config, new_app
from offsite.cli.output import JsonOption, print_json, print_line, print_table
from shared.config import Config
from shared.config.ingest import IngestSettings
from shared.errors import OffsiteError

app = new_app(no_args_is_help=True, help="SQLite → BigQuery incremental ingest (docs/ingest.md).")


def _load(config: Path | None) -> tuple[Config, IngestSettings]:
    """The config and its ingest section; one error line and exit 2 when it has none."""
    cfg = load_cli_config(config)
    if cfg.ingest is None:
        typer.echo("error: ingest: not configured (add an 'ingest:' section; see docs/ingest.md)", err=True)
        raise typer.Exit(2)
    return cfg, cfg.ingest


def _client() -> Any:
    from shared.gcp import clients

    return clients.bigquery_client()


def _tables_option(value: str | None) -> list[str] | None:
    """``--tables`` as a list; None when not given. Exit 2 when it names no table: an empty list
    must not widen to every table (with --full: a full re-sync of everything)."""
    if value is None:
        return None
    names = [t.strip() for t in value.split(",") if t.strip()]
    if not names:
        typer.echo(
            f"error: ingest run --tables: {value!r} names no table (expected comma-separated table names, "
            "e.g. users,messages; leave the option out to sync every table)",
            err=True,
        )
        raise typer.Exit(2)
    return names


def _sqlite_file(settings: IngestSettings) -> str:
    """``ingest.sqlite_path``; exit 2 naming it when it is not a file (the config is wrong, no sync failed)."""
    if not Path(settings.sqlite_path).is_file():
        typer.echo(
            f"error: ingest.sqlite_path: {settings.sqlite_path!r} is not a file (expected the app's SQLite database)",
            err=True,
        )
        raise typer.Exit(2)
    return settings.sqlite_path


@app.command("run")
def run(
    full: Annotated[bool, typer.Option("--full", help="Read every row, not only those past the watermark.")] = False,
    tables: Annotated[str | None, typer.Option("--tables", help="Only these tables, comma-separated.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan and read; write nothing to BigQuery.")] = False,
    report: Annotated[
        bool,
        typer.Option(
            "--report",
            help="Publish each table's result on verify-results as the ingest function does: run history, "
            "`offsite status`, Slack alerts on failure (needs publish rights on verify-results).",
        ),
    ] = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Sync the tables now. Exit 1 if any table failed, a service could not be reached or (with
    --report) the results could not be published; 2 on a bad option (an unknown or empty
    --tables, --report with --dry-run) or configuration."""
    from shared.ingest.engine import IngestRun, sync

    cfg, settings = _load(config)
    wanted = _tables_option(tables)
    if report and dry_run:
        typer.echo("error: ingest run --report: a --dry-run syncs nothing, so there is nothing to report", err=True)
        raise typer.Exit(2)
    _sqlite_file(settings)
    with exit_on_error():
        outcomes = sync(IngestRun(settings, _client(), cfg.project), tables=wanted, full=full, dry_run=dry_run)
    if as_json:
        print_json([o.as_dict() for o in outcomes])
    else:
        print_table(
            ["TABLE", "MODE", "STATUS", "READ", "MERGED", "WATERMARK", "NOTE"],
            [(o.table, o.mode, o.status, o.rows_read, o.rows_merged, o.watermark, o.error or "") for o in outcomes],
            right=("READ", "MERGED"),
        )
    if report:
        with exit_on_error(code=1, what="ingest run --report: the tables synced, their results were not published: "):
            _report(cfg, settings, outcomes)
    if any(o.status == "failed" for o in outcomes):
        raise typer.Exit(1)


def _report(cfg: Config, settings: IngestSettings, outcomes: list[Any]) -> None:
    """One result per table on verify-results under a new run id (as the function publishes them)."""
    from shared.ingest.report import publish
    from shared.stages.fan_out import new_run_id

    publish(outcomes, project=cfg.project, dataset=settings.dataset, run_id=new_run_id(), config=cfg)


@app.command("status")
def status(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Per table: last sync, watermark, rows, lag, last error, lease."""
    from shared.ingest.state import SyncState

    cfg, settings = _load(config)
    with exit_on_error():
        states = SyncState(_client(), cfg.project, settings.dataset).all()
    now = dt.datetime.now(dt.UTC)
    rows = [s.status_row(now) for s in states]
    if as_json:
        print_json(rows)
        return
    if not rows:
        print_line("no table synced yet")
        return
    print_table(
        ["TABLE", "LAST SYNC", "WATERMARK", "ROWS", "LAG S", "LEASE", "LAST FAILURE"],
        [
            (
                r["table"],
                r["last_sync_at"],
                r["watermark"],
                r["rows_total"],
                r["lag_s"],
                r["lease_owner"],
                r["last_error"],
            )
            for r in rows
        ],
        right=("ROWS", "LAG S"),
    )


@app.command("tables")
def tables(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """The tables discovered in the SQLite file, with mode, key and cursor (or why they cannot sync)."""
    from shared.ingest import plan

    _, settings = _load(config)
    with exit_on_error():
        conn = plan.connect(_sqlite_file(settings))
    rows: list[dict[str, Any]] = []
    try:
        for name in plan.discover(conn, settings):
            try:
                p = plan.plan_table(conn, settings, name)
            except OffsiteError as exc:
                rows.append({"table": name, "error": str(exc)})
                continue
            rows.append(
                {
                    "table": name,
                    "mode": p.mode,
                    "key": list(p.key),
                    "cursor": p.cursor,
                    "columns": {c.name: c.bq_type for c in p.columns},
                    "hashed": [c.name for c in p.columns if c.hashed],
                    "deletes": p.deletes,
                    "cursor_indexed": plan.cursor_indexed(conn, p),
                    "ids_reused": p.ids_reused,
                }
            )
    finally:
        conn.close()
    if as_json:
        print_json(rows)
        return
    print_table(
        ["TABLE", "MODE", "KEY", "CURSOR", "COLUMNS", "HASHED", "NOTE"],
        [
            (
                r["table"],
                r.get("mode"),
                ",".join(r.get("key", [])),
                r.get("cursor"),
                len(r.get("columns", {})),
                ",".join(r.get("hashed", [])),
                r.get("error") or _note(r),
            )
            for r in rows
        ],
        right=("COLUMNS",),
    )


def _note(row: dict[str, Any]) -> str:
    """What a planned table's sync costs or misses, when it is worth saying."""
    if row.get("ids_reused"):  # INTEGER PRIMARY KEY without AUTOINCREMENT (docs/ingest.md, cursor)
        return "id cursor without AUTOINCREMENT: a reused id syncs at the next full sync"
    if row.get("cursor") is None:
        return "no cursor: each run reads the whole table"
    if row.get("cursor_indexed") is False:
        return "cursor not indexed: each run reads the whole table"
    return ""


@app.command("reset")
def reset(
    table: Annotated[str, typer.Argument(help="The table to re-sync from scratch.")],
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Forget a table's watermark: the next run re-syncs all its rows (merge by key: no duplicates)."""
    from shared.ingest.state import SyncState

    cfg, settings = _load(config)
    with exit_on_error():
        known = SyncState(_client(), cfg.project, settings.dataset).reset(table)
    if not known:
        typer.echo(f"error: {table!r} has no sync state (see `offsite ingest status`)", err=True)
        raise typer.Exit(1)
    if as_json:
        print_json({"table": table, "watermark_cleared": True})
        return
    print_line(f"{table}: watermark cleared; the next run re-syncs every row")


@app.command("push")
def push(
    to: Annotated[str | None, typer.Option("--to", help="gs://BUCKET/PATH (default: ingest.snapshot_uri).")] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Take a consistent snapshot (SQLite online backup API) and upload it for the ingest function.

    Exit 1 if the upload failed, 2 on a bad --to or configuration."""
    from shared.gcp import clients
    from shared.ingest import snapshot

    _, settings = _load(config)
    uri = to or settings.snapshot_uri
    if not uri:
        typer.echo("error: ingest.snapshot_uri is not set and no --to was given", err=True)
        raise typer.Exit(2)
    with exit_on_error(2, what="ingest push --to: " if to else "ingest.snapshot_uri: "):
        snapshot.split_uri(uri)  # a bad address is the input's fault (2), not a failed upload (1)
    source = _sqlite_file(settings)
    with tempfile.TemporaryDirectory(prefix="offsite-push-") as work:
        with exit_on_error():
            done = snapshot.push(source, uri, clients.storage_client(), Path(work))
    if as_json:
        print_json(done)
    else:
        print_line(f"uploaded gs://{done['bucket']}/{done['name']} ({done['size']} bytes)")
