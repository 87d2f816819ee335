"""``offsite run``: start an export by hand, exactly as Cloud Scheduler would.

    offsite run --dataset sales [--tables orders,customers] [--destinations box,sftp:acme] [--format AVRO]
    offsite run --export orders_daily [--date 2025-01-08]
    offsite run ... --wait            # then wait for every table's _manifest.json
    offsite run ... --json            # one JSON document (after waiting, with --wait)

With ``--wait`` a live table (plain ``done: …`` lines when not on a terminal) shows each
table's export: status, files, bytes and rate since the request was published. The wait ends
early when the run history already says the missing exports failed or were rejected.

It publishes one export request (JSON) on ``export-requests`` — the same message
``gcloud pubsub topics publish export-requests --message=...`` would — with an explicit
``run_id`` so it can print it (a run id derived from the Pub/Sub message id is only known
inside fan_out). Arguments go through the same parser and config checks as fan_out.
Environment: as for the functions (``OFFSITE_CONFIG``; ``. .offsite/env`` on the local stack).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from offsite.cli.common import ConfigOption, exit_on_error, load_cli_config
from offsite.cli.output import JsonOption, print_json, print_line
from shared.config import Config
from shared.errors import OffsiteError, RejectedInput, TransientError
from shared.messages import ExportRequest, TableExport, VerifyResult

if TYPE_CHECKING:
    from offsite.cli.progress import Row

HISTORY_SLACK = dt.timedelta(minutes=1)  # a failure recorded by a host whose clock is behind ours still counts


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
    wait: Annotated[bool, typer.Option("--wait", help="Wait until every table's manifest is written.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds --wait waits at most.")] = 900.0,
    json_out: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Publish an export request on export-requests and print its run id.

    Exit 2 on a bad option (nothing is published). With --wait: exit 0 once every table's
    manifest is written, 1 when the timeout passes or every table still missing has a failed or
    rejected export in the run history (each is printed)."""
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
    with exit_on_error(1, what="publishing the request failed: "):
        from shared.gcp import pubsub
        from shared.topology import EXPORT_REQUESTS

        message_id = pubsub.publish(EXPORT_REQUESTS, data, origin="offsite-run")
    printed = {"run_id": request.run_id, "message_id": message_id, "topic": EXPORT_REQUESTS, "request": body}
    _report(request, cfg, printed, published_at, planned, wait=wait, timeout_s=timeout, as_json=json_out)


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
    wait: bool,
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
    if wait:
        waited = wait_for_manifests(request, cfg, published_at, planned, timeout_s, show=not as_json)
        if as_json:
            print_json({**printed, **dataclasses.asdict(waited)})
        raise typer.Exit(0 if waited.complete else 1)


def expected_exports(request: ExportRequest, cfg: Config, published_at: dt.datetime) -> list[TableExport]:
    """What fan_out will publish for this request (its plan, with our publish time), reporting
    nothing: fan_out itself reports a table it leaves out."""
    from shared.gcp.bigquery import warehouse
    from shared.stages import fan_out

    wh = warehouse() if request.dataset else None
    assert request.run_id is not None
    return fan_out.expected_exports(request, cfg, wh, run_id=request.run_id, publish_time=_rfc3339(published_at))


def manifest_names(request: ExportRequest, cfg: Config, planned: list[TableExport]) -> dict[str, list[str]]:
    """Per source label, the ``_manifest.json`` names that finish it (either is enough).

    The scheduled day comes from the publish time, which lies between the plan made before
    publishing (``planned``) and now: around midnight the two may be different days, so both
    candidates are watched.
    """
    try:
        later = expected_exports(request, cfg, dt.datetime.now(dt.UTC))
    except TransientError:
        later = []  # BigQuery away for a moment: the plan made before publishing stands (midnight aside)
    candidates = planned + later
    pending: dict[str, list[str]] = {}
    for task in candidates:
        names = pending.setdefault(task.source.label, [])
        if task.prefix + "_manifest.json" not in names:
            names.append(task.prefix + "_manifest.json")
    return pending


@dataclasses.dataclass(frozen=True)
class Waited:
    """How ``--wait`` ended: all manifests written, and what was found or reported failed."""

    complete: bool
    manifests: list[dict[str, Any]]
    failures: list[dict[str, Any]]  # per table: source, status, stage, reason


def wait_for_manifests(
    request: ExportRequest,
    cfg: Config,
    published_at: dt.datetime,
    planned: list[TableExport],
    timeout_s: float,
    *,
    show: bool = True,
) -> Waited:
    """Poll GCS until every expected ``_manifest.json`` exists, showing progress when ``show``;
    stop early once every table still missing has a failed/rejected export in the run history
    (no manifest will come for it). Each manifest found is summarised (source, gs:// URI, files,
    rows, bytes, seconds since the request was published)."""
    from offsite.cli.progress import Board

    try:
        pending = manifest_names(request, cfg, planned)
    except OffsiteError as exc:
        typer.echo(f"error: cannot tell which manifests to wait for: {exc}", err=True)
        return Waited(False, [], [])
    assert request.run_id is not None
    labels = sorted(pending)
    found: dict[str, dict[str, Any]] = {}
    failed: dict[str, VerifyResult] = {}
    deadline = time.monotonic() + timeout_s
    with Board(f"offsite run {request.run_id}", plain_rows=False) if show else _Silent() as board:
        board.log(f"waiting for {len(labels)} export(s): {', '.join(labels)}")
        while True:
            for label, names in list(pending.items()):
                done = _read_manifest(cfg, label, names, published_at)
                if done is not None:
                    found[label] = done
                    del pending[label]
                    board.log(f"done: {label}: {done['rows']} rows in {done['files']} files, {done['manifest']}")
            failed = _export_failures(cfg, request.run_id, published_at, set(pending))
            board.update([_export_row(request.run_id, label, found.get(label), failed.get(label)) for label in labels])
            if set(pending) <= set(failed) or time.monotonic() > deadline:
                break
            time.sleep(1.0)
    _explain_missing(pending, failed, timeout_s)
    failures = [
        {"source": label, "status": str(r.status), "stage": r.stage and str(r.stage), "reason": r.reason}
        for label, r in sorted(failed.items())
    ]
    return Waited(not pending, [found[label] for label in labels if label in found], failures)


def _export_failures(cfg: Config, run_id: str, published_at: dt.datetime, labels: set[str]) -> dict[str, VerifyResult]:
    """Per label of ``labels``, the run's last failed/rejected result that means its manifest will
    not come: its table's export failed or was dead-lettered (export_table), or fan_out refused
    the whole request (no source: every table). Same reading as devstack.demo_summary.progress."""
    from shared.ids import Stage
    from shared.reporting.history import read

    if not labels:
        return {}
    try:
        results = read(cfg.state_bucket_name, published_at - HISTORY_SLACK, run_ids=[run_id])
    except TransientError:
        return {}  # the history is an early answer only; the manifests and the timeout still decide
    failures: dict[str, VerifyResult] = {}
    for r in results:  # oldest first: the last one wins
        if r.status not in ("failed", "rejected") or r.stage not in (Stage.FAN_OUT, Stage.EXPORT_TABLE):
            continue
        for label in labels if r.source is None else {r.source.label} & labels:
            failures[label] = r
    return failures


def _explain_missing(pending: dict[str, list[str]], failed: dict[str, VerifyResult], timeout_s: float) -> None:
    """On stderr: each export reported failed, then those with neither a manifest nor a failure."""
    for label, result in sorted(failed.items()):
        typer.echo(f"error: {label}: export {result.status} ({result.stage}): {result.reason or ''}".rstrip(), err=True)
    waiting = sorted(set(pending) - set(failed))
    if waiting:
        typer.echo(f"error: no manifest after {timeout_s:.0f}s for: {', '.join(waiting)}", err=True)
        typer.echo("hint: `offsite status` and the function logs show rejected or failed exports", err=True)


def _read_manifest(cfg: Config, label: str, names: list[str], published_at: dt.datetime) -> dict[str, Any] | None:
    """The first of ``names`` that exists, summarised; None while none does."""
    from shared.gcp import gcs
    from shared.manifest import Manifest

    for name in names:
        data = gcs.read_bytes(cfg.bucket, name)
        if data is None:
            continue
        manifest = Manifest.from_json(data, name)
        return {
            "source": label,
            "manifest": f"gs://{cfg.bucket}/{name}",
            "files": len(manifest.files),
            "rows": manifest.row_count,
            "bytes": manifest.total_bytes,
            "seconds": round((dt.datetime.now(dt.UTC) - published_at).total_seconds(), 1),
        }
    return None


def _export_row(run_id: str, label: str, done: dict[str, Any] | None, failure: VerifyResult | None) -> Row:
    from offsite.cli.progress import Row

    if done is None:
        return Row(run_id, label, "export", None, str(failure.status) if failure else "waiting")
    rate = done["bytes"] / done["seconds"] if done["seconds"] > 0 else None
    return Row(run_id, label, "export", None, "done", str(done["files"]), done["bytes"], rate)


class _Silent:
    """A board that shows nothing (``--json``)."""

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def log(self, text: str) -> None:
        return None

    def update(self, rows: list[Row]) -> None:
        return None
