"""offsite collect: operate collect jobs (files from a partner's SFTP server into destinations).

    offsite collect status [JOB]             last run, files, bytes, reason, last collected at, next run
    offsite collect ls JOB                   the partner directory, each file with what the next run does
    offsite collect run JOB [--dry-run]      publish {"collect": JOB} on collect-requests (or only show
                                             what would be copied); --any-day ignores the calendar;
                                             --wait waits for the run's result (exit 0: in_sync or skipped)

They use the same environment as the functions (``OFFSITE_CONFIG``; on the local stack
``. .offsite/env``); ``--config`` picks another config file.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer

from offsite.cli.common import ConfigOption, exit_on_error, load_cli_config, new_app
from offsite.cli.output import JsonOption, print_json, print_line, print_table
from shared.collect.messages import CollectRequest
from shared.config import Config
from shared.config.collect import CollectJob
from shared.ids import Stage, Status
from shared.messages import VerifyResult
from shared.topology import COLLECT_REQUESTS

app = new_app(no_args_is_help=True, help="Operate collect jobs (partner SFTP → destinations).")
JobArgument = Annotated[str, typer.Argument(help="The collect job's name (config collect.jobs).")]


def _job(cfg: Config, name: str) -> CollectJob:
    job = cfg.collect_job(name)
    if job is None:
        known = ", ".join(j.name for j in cfg.collect.jobs) or "none configured"
        typer.echo(f"error: {name!r} is not a configured collect job (configured: {known})", err=True)
        raise typer.Exit(2)
    return job


def skip_today(job: CollectJob, now: dt.datetime) -> str | None:
    """Why a run started ``now`` copies nothing (the calendar skips today in the job's time zone,
    the day the collect stage judges), or None on a business day."""
    return job.calendar.skip_reason(now.astimezone(ZoneInfo(job.time_zone)).date())


@app.command("status")
def status(
    job: Annotated[str | None, typer.Argument(help="Only this job.")] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Each job's last run (status, files, bytes, reason), last collected at, and next run."""
    cfg = load_cli_config(config)
    jobs = [_job(cfg, job)] if job else list(cfg.collect.jobs)
    if not jobs:
        print_line("no collect jobs configured (config collect.jobs)")
        return
    from shared.collect.runs import status_row

    now = dt.datetime.now(dt.UTC)
    rows = [status_row(cfg, j, now) for j in jobs]
    if as_json:
        print_json(rows)
        return
    # The reason is shown whatever the status: an in_sync run names files that arrived while it listed.
    columns = ("JOB", "PARTNER", "LAST RUN", "STATUS", "FILES", "BYTES", "LAST COLLECTED", "NEXT RUN", "LAST REASON")
    cells = [
        [r["job"], r["partner"], r["last_run_at"], r["last_status"], r["last_files"], r["last_bytes"]]
        + [r["last_collected_at"], r["next_run"], r["last_reason"]]
        for r in rows
    ]
    print_table(columns, cells, right={"FILES", "BYTES"})


def _survey(cfg: Config, job: CollectJob) -> list[dict[str, Any]]:
    from shared.collect.listing import survey
    from shared.collect.messages import printable

    with exit_on_error(1):
        judged = survey(cfg, job)
    return [
        {
            "name": printable(j.file.name),  # a name that is not UTF-8 shows its bytes as \xe9
            "size": j.file.size,
            "mtime": dt.datetime.fromtimestamp(j.file.mtime, dt.UTC).isoformat(),
            "state": j.state,
            "why": j.why,
        }
        for j in judged
    ]


@app.command("ls")
def ls(job: JobArgument, as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """The job's partner directory: every file, and what the next run does with it."""
    cfg = load_cli_config(config)
    rows = _survey(cfg, _job(cfg, job))
    if as_json:
        print_json(rows)
        return
    print_table(
        ("NAME", "SIZE", "MTIME", "STATE", "NOTE"),
        [[r["name"], r["size"], r["mtime"], r["state"], r["why"]] for r in rows],
        right={"SIZE"},
    )


@app.command("run")
def run(
    job: JobArgument,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show what would be copied.")] = False,
    any_day: Annotated[bool, typer.Option("--any-day", help="Run even on a day the calendar skips.")] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the run's result: exit 0 when in_sync or skipped, else 1.")
    ] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds --wait waits at most.")] = 900.0,
    run_id: Annotated[
        str | None,
        typer.Option("--run-id", help="Name the run (default: a new r + 12 hex id); a run id used before is that run."),
    ] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Publish {"collect": JOB} on collect-requests, as the scheduler does (or, with --dry-run,
    list what would be copied: new files, and those that wait for a second listing; on a day the
    job's calendar skips, nothing unless --any-day). With --wait: exit 0 once the run is reported
    in_sync (or skipped), 1 when it is reported otherwise or the timeout passes."""
    cfg = load_cli_config(config)
    chosen = _job(cfg, job)
    if dry_run:
        _dry_run(cfg, chosen, any_day=any_day, as_json=as_json)
        return
    request, message_id = _publish(job, run_id, any_day)
    printed: dict[str, Any] = {"topic": COLLECT_REQUESTS, "message_id": message_id, "request": request.to_dict()}
    if not as_json:
        print_line(f"published on {COLLECT_REQUESTS} (message {message_id}): {request.to_json().decode()}")
    if not wait:
        if as_json:
            print_json(printed)
        else:
            print_line(f"follow it with: offsite collect status {job}")
        return
    raise typer.Exit(_wait_and_report(cfg, request, printed, timeout=timeout, as_json=as_json))


def _dry_run(cfg: Config, chosen: CollectJob, *, any_day: bool, as_json: bool) -> None:
    """What a run would copy now: new files, and those that wait for a second listing."""
    from shared.collect.selection import HELD

    job = chosen.name
    skip = None if any_day else skip_today(chosen, dt.datetime.now(dt.UTC))
    if skip is not None:  # the run would copy nothing today: say so, as it would report it
        if as_json:
            typer.echo(f"collect {job}: a run today copies nothing: {skip}", err=True)
            print_json([])
        else:
            print_line(f"collect {job}: a run today copies nothing: {skip} (--any-day runs it anyway)")
        return
    surveyed = _survey(cfg, chosen)
    rows = [r for r in surveyed if r["state"] in ("take", "settling")]
    held = [r["name"] for r in surveyed if r["state"] in HELD]
    if as_json:
        print_json(rows)
        return
    if held:
        print_line(f"collect {job}: not collected (`offsite collect ls {job}` says why): {', '.join(held)}")
    if not rows:
        print_line(f"collect {job}: nothing new to copy")
        return
    targets = ", ".join(str(d) for d in chosen.destinations)
    print_line(f"collect {job}: would copy to {targets} under {chosen.target_folder}/ (then {chosen.post_action})")
    print_table(("NAME", "SIZE", "MTIME", "NOTE"), [[r["name"], r["size"], r["mtime"], r["why"]] for r in rows])


def _publish(job: str, run_id: str | None, any_day: bool) -> tuple[CollectRequest, str]:
    """Publish the run's request on collect-requests (exit 2 when it does not validate)."""
    from shared.errors import RejectedInput
    from shared.gcp import pubsub
    from shared.stages.fan_out import new_run_id

    try:
        request = CollectRequest.from_obj(
            {"collect": job, "run_id": run_id or new_run_id(), "ignore_calendar": any_day}
        )
    except RejectedInput as exc:
        typer.echo(f"error: {exc} (nothing was published)", err=True)
        raise typer.Exit(2) from None
    with exit_on_error(1, what="publishing the request failed: "):
        message_id = pubsub.publish(COLLECT_REQUESTS, request, origin="offsite-collect-run")
    return request, message_id


def _wait_and_report(
    cfg: Config, request: CollectRequest, printed: dict[str, Any], *, timeout: float, as_json: bool
) -> int:
    """Wait for the run's result and print it; the exit code: 0 when in_sync or skipped, else 1."""
    from shared.collect.runs import wait_for_run

    job, run_id = request.collect, request.run_id
    assert run_id is not None
    # published a moment ago; a minute's slack for a failure recorded by a host whose clock is behind ours
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    result = wait_for_run(cfg.state_bucket_name, job, run_id, timeout_s=timeout, since=since)
    ok = result is not None and result.status in (Status.IN_SYNC, Status.SKIPPED)
    if as_json:
        print_json({**printed, "complete": result is not None, "result": result.to_dict() if result else None})
    elif result is None:
        typer.echo(f"error: collect {job} {run_id}: no result after {timeout:.0f}s", err=True)
        typer.echo(
            f"hint: `offsite collect status {job}` and `offsite logs -f collect_list -f collect_copy "
            f"--run-id {run_id}` say where it is",
            err=True,
        )
    else:
        line = f"collect {job} {run_id}: {result.status} ({result.stage})"
        if result.stage != Stage.COLLECT_LIST:  # a failed listing counted nothing
            line += f": {_result_counts(result)}"
        if ok:
            print_line(line)
        else:
            typer.echo(f"error: {line}", err=True)
        if result.reason and result.status != Status.IN_SYNC:
            typer.echo(f"  {result.reason}", err=not ok)
    return 0 if ok else 1


def _result_counts(result: VerifyResult) -> str:
    return (
        f"{result.files_present}/{result.files_expected} files, {result.bytes_present:,} bytes, "
        f"{result.duration_s or 0:.1f} s"
    )
