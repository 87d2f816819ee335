"""Operations: ``offsite status``, ``offsite verify`` (dead letters: :mod:`offsite.cli.dlq`).

They use the same environment as the functions (``OFFSITE_CONFIG``, and on the local stack
``. .offsite/env`` for the emulators); ``--config`` picks another config file.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

import typer

from offsite.cli.common import ConfigOption, exit_on_error, load_cli_config
from offsite.cli.output import JsonOption, print_json, print_line, print_published, print_table
from shared.config import Config
from shared.ids import Stage, Status
from shared.messages import VerifyResult


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.command("status")(status)
    app.command("verify")(verify)


def parse_since(value: str) -> dt.timedelta:
    """``30m``, ``12h``, ``7d``, ``2w`` → a timedelta."""
    match = re.fullmatch(r"(\d+)\s*([mhdw])", value.strip())
    if not match:
        raise typer.BadParameter(f"{value!r}: expected a number and a unit (m, h, d, w), e.g. 7d")
    n, unit = int(match.group(1)), match.group(2)
    return {
        "m": dt.timedelta(minutes=n),
        "h": dt.timedelta(hours=n),
        "d": dt.timedelta(days=n),
        "w": dt.timedelta(weeks=n),
    }[unit]


# ---- status --------------------------------------------------------------------------------


def status_rows(
    results: list[VerifyResult], dataset: str | None = None, *, export: str | None = None, failing: bool = False
) -> list[dict[str, Any]]:
    """One row per (run, source): latest status per destination (``stages``: per stage, for a
    result of no one destination), sizes, duration, last failure (a final failure only), and the
    latest restore drill of the run apart from its destinations. Only the runs of ``dataset`` /
    query ``export`` when given; with ``failing``, only the rows :func:`is_failing` picks."""
    rows: dict[tuple[str, str, int], dict[str, Any]] = {}
    when: dict[tuple[str, str, int], dict[str, int]] = {}  # per row: the index of each entry's latest result
    for n, r in enumerate(results):  # oldest first: later results overwrite earlier ones
        if dataset and (r.source.dataset if r.source else None) != dataset:
            continue
        if export and (r.source.label if r.source else None) != f"export:{export}":
            continue
        # a message rejected before it was given a run id is an event of its own, not a run's
        key = (r.run_id or "-", r.source.label if r.source else "-", 0 if r.run_id else n)
        row = rows.setdefault(
            key,
            {
                "run_id": key[0],
                "source": key[1],
                "date": r.date,
                "destinations": {},
                "stages": {},
                "files": None,
                "bytes": None,
                "duration_s": None,
                "last_failure": None,
                "restore_drill": None,
                "updated": None,
            },
        )
        row["date"] = row["date"] or r.date  # a request dead-lettered before fan_out dated it has none
        drill = r.stage == Stage.RESTORE_DRILL  # says whether the copy restores, not what the destination holds
        where = str(r.destination or r.stage)
        if drill and r.destination:
            where = f"restore drill from {r.destination}"
        if drill:
            row["restore_drill"] = {"status": r.status, "destination": r.destination, "at": r.finished_at}
        elif r.destination:
            row["destinations"][r.destination] = r.status
            when.setdefault(key, {})[f"destination {r.destination}"] = n
        else:  # a stage's result for no one destination (a collect run, a rejected message)
            row["stages"][r.stage] = r.status
            when.setdefault(key, {})[f"stage {r.stage}"] = n
        if r.files_expected:
            row["files"], row["bytes"] = r.files_expected, r.bytes_expected
        if r.duration_s is not None:
            row["duration_s"] = max(row["duration_s"] or 0.0, r.duration_s)
        if r.status.is_final_failure:
            row["last_failure"] = f"{where}: {r.status}: {r.reason or ''}".strip()
        row["updated"] = r.finished_at
    for key, row in rows.items():
        _drop_superseded_stage_failures(row, when.get(key, {}))
    newest_first = sorted(rows.values(), key=lambda row: row["updated"] or "", reverse=True)
    return [row for row in newest_first if is_failing(row)] if failing else newest_first


def _drop_superseded_stage_failures(row: dict[str, Any], when: dict[str, int]) -> None:
    """A run's failure at no one destination (e.g. its verify dead-lettered) is over once every
    destination of the row has a result after it: the run was healed or replayed since, and
    those results say how it stands. It stays in ``last_failure``, which is history."""
    if row["run_id"] == "-" or not row["destinations"]:
        return
    settled = min(when[f"destination {d}"] for d in row["destinations"])
    for stage, status in list(row["stages"].items()):
        if Status(status).is_final_failure and when[f"stage {stage}"] < settled:
            del row["stages"][stage]


def is_failing(row: dict[str, Any]) -> bool:
    """A destination's, a stage's or the restore drill's latest result is a failure (mismatch,
    incomplete, rejected, failed, restore_failed): a run healed to in_sync since is not."""
    latest = [*row["destinations"].values(), *row["stages"].values()]
    if row["restore_drill"]:
        latest.append(row["restore_drill"]["status"])
    return any(Status(status).is_final_failure for status in latest)


def status(
    since: Annotated[str, typer.Option("--since", help="How far back: 30m, 12h, 7d, 2w.")] = "7d",
    dataset: Annotated[str | None, typer.Option("--dataset", help="Only runs of this dataset.")] = None,
    export: Annotated[str | None, typer.Option("--export", help="Only runs of this query export.")] = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Only this run (every table of it).")] = None,
    failing: Annotated[
        bool,
        typer.Option(
            "--failing", help="Only runs whose latest result at a destination (or stage, or drill) is a failure."
        ),
    ] = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Runs and their verify results per destination (from the run history in GCS)."""
    from shared.reporting.history import read

    cfg = load_cli_config(config)
    start = dt.datetime.now(dt.UTC) - parse_since(since)
    results = read(cfg.state_bucket_name, start, run_ids=[run_id] if run_id else None)
    rows = status_rows(results, dataset, export=export, failing=failing)
    if as_json:
        print_json(rows)
        return
    if not rows:
        asked = _asked(cfg, dataset, export, run_id)
        print_line(f"no {'failing ' if failing else ''}verify results{asked} since {start:%Y-%m-%d %H:%M} UTC")
    else:
        print_table(STATUS_COLUMNS, [status_cells(row) for row in rows], right={"FILES", "BYTES", "DURATION"})
    if run_id or export or failing:
        return  # the lines below are about the collect jobs and the drills, not about what was asked for
    print_freshness(cfg)
    from offsite.cli.restore_drill import print_drills
    from shared.restore import drill_records

    print_drills(drill_records.status_rows(cfg, dt.datetime.now(dt.UTC)))


def _asked(cfg: Config, dataset: str | None, export: str | None, run_id: str | None) -> str:
    """What an empty answer was asked for (`` of run r1, dataset 'hr'``), naming a dataset or
    export the config does not have (its runs may be from an older config, so it is no error)."""
    parts = [f"run {run_id}"] if run_id else []
    for kind, name, configured in (
        ("dataset", dataset, [d.name for d in cfg.datasets]),
        ("query export", export, [e.name for e in cfg.exports]),
    ):
        if name:
            note = (
                ""
                if name in configured
                else f" (not a configured {kind}; configured: {', '.join(configured) or 'none'})"
            )
            parts.append(f"{kind} {name!r}{note}")
    return f" of {', '.join(parts)}" if parts else ""


def print_freshness(cfg: Config) -> None:
    """One line per collect job: when a file was last collected, and the last run (``offsite collect status``)."""
    from shared.collect.runs import freshness

    for job in cfg.collect.jobs:
        record = freshness(cfg.state_bucket_name, job.name) or {}
        print_line(
            f"collect {job.name}: last collected at {record.get('last_collected_at') or 'never'}; "
            f"last run {record.get('last_run_at') or 'none'} {record.get('last_status') or ''}".rstrip()
        )


STATUS_COLUMNS = ("RUN", "SOURCE", "DATE", "DESTINATIONS", "FILES", "BYTES", "DURATION", "LAST FAILURE")


def status_cells(row: dict[str, Any]) -> list[Any]:
    """One ``status`` table row: destinations (then stages) as ``name=status``, the duration in seconds."""
    dests = ", ".join(f"{d}={s}" for d, s in [*sorted(row["destinations"].items()), *sorted(row["stages"].items())])
    duration = f"{row['duration_s']:.0f}s" if row["duration_s"] is not None else None
    failure = row["last_failure"][:200] if row["last_failure"] else None
    return [row["run_id"], row["source"], row["date"], dests, row["files"], row["bytes"], duration, failure]


# ---- verify --------------------------------------------------------------------------------


def verify(
    run_id: Annotated[str, typer.Argument(help="The run id (every table of it is checked).")],
    destination: Annotated[str | None, typer.Option("--destination", "-d", help="Only this destination.")] = None,
    publish: Annotated[
        bool, typer.Option("--publish", help="Send a verify-request (the verify function reports) instead.")
    ] = False,
    size_only: Annotated[bool, typer.Option("--size-only", help="Do not read files back to hash them.")] = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Compare a run's manifest with its destinations here and now (nothing is published, healed or deleted).

    Files verify itself would remove (a superseded same-day run's, in a shared folder) are listed,
    not removed. Exit 0 when every destination is in sync, 1 otherwise, 2 when the run cannot be found.
    """
    from shared.gcp import pubsub
    from shared.messages import VerifyRequest
    from shared.topology import VERIFY_REQUESTS

    cfg = load_cli_config(config)
    if publish:
        with exit_on_error():
            request = VerifyRequest(run_id=run_id, destination=destination)
            VerifyRequest.from_json(request.to_json())  # the function's own validation, before sending
            message_id = pubsub.publish(VERIFY_REQUESTS, request)
        print_published("verify", VERIFY_REQUESTS, request, message_id, as_json)
        return
    with exit_on_error():
        checks = local_checks(cfg, run_id, destination, download=False if size_only else None)
    exit_with_checks(checks, as_json)


def exit_with_checks(checks: list[VerifyResult], as_json: bool) -> None:
    """Print the checks (a table, or JSON) and exit 0 when all are in sync, 1 otherwise."""
    if as_json:
        print_json([c.to_dict() for c in checks])
    else:
        print_checks(checks)
    raise typer.Exit(0 if checks and all(c.status == "in_sync" for c in checks) else 1)


def local_checks(
    cfg: Config, run_id: str, destination: str | None, *, download: bool | None = None
) -> list[VerifyResult]:
    """The engine on every run folder of ``run_id`` (and destination), as results (not published)."""
    from shared.errors import PermanentError, RejectedInput, TransientError
    from shared.verify.flow import RunContext, Trigger, build_result, classify, run_comparison, utcnow
    from shared.verify.markers import read_state
    from shared.verify.runs import RunObjects, find_runs, load_manifest

    runs = find_runs(cfg.bucket, cfg.export_prefix, cfg.project, run_id=run_id, state_bucket=cfg.state_bucket_name)
    if not runs:
        raise RejectedInput(f"no run {run_id!r} under gs://{cfg.bucket}/{cfg.export_prefix}/")
    checks = []
    for run in runs:
        manifest = load_manifest(cfg.bucket, run.folder)
        if manifest is None:
            checks.append(
                VerifyResult(
                    status="incomplete",
                    run_id=run_id,
                    source=run.folder.source,
                    date=run.folder.date.isoformat(),
                    destination=destination,
                    reason="export incomplete: no _manifest.json yet",
                )
            )
            continue
        ctx = RunContext(cfg, run.folder, manifest)
        objects = RunObjects(cfg.bucket, run.folder)
        for dest in [destination] if destination else manifest.destinations:
            if dest not in manifest.destinations:
                raise RejectedInput(
                    f"--destination {dest!r}: run {run_id} ({run.folder.source.label}) goes to {', '.join(manifest.destinations)}"
                )
            try:
                comparison = run_comparison(ctx, dest, objects.sha1, download=download, remove_superseded=False)
            except RejectedInput:
                raise
            except (TransientError, PermanentError) as exc:
                checks.append(_unchecked(ctx, dest, exc))  # one destination down hides no other's result
                continue
            state = read_state(cfg.state_bucket_name, run.folder.prefix, dest)
            checks.append(
                build_result(
                    ctx,
                    dest,
                    comparison,
                    classify(comparison, state),
                    Trigger.REQUEST,
                    heal_attempts=state.heal_attempts,
                    note=None,
                    started=objects.started,
                    now=utcnow(),
                )
            )
    return checks


def _unchecked(ctx: Any, destination: str, exc: Exception) -> VerifyResult:
    """A destination that could not be compared now (down, refusing us): ``failed``, saying why."""
    return VerifyResult(
        status=Status.FAILED,
        stage=Stage.VERIFY,
        run_id=ctx.folder.run_id,
        source=ctx.folder.source,
        date=ctx.folder.date.isoformat(),
        destination=destination,
        files_expected=len(ctx.manifest.files),
        reason=f"could not be checked: {exc}",
    )


CHECK_COLUMNS = ("RUN", "SOURCE", "DATE", "DESTINATION", "STATUS", "CHECK", "FILES", "BYTES", "HEALS")


def print_checks(checks: list[VerifyResult]) -> None:
    """A table of the checks (one row per run folder and destination), then what differs."""
    rows = [
        [
            r.run_id,
            (r.source.label if r.source else "-"),
            r.date,
            r.destination,
            r.status.upper(),
            r.check,
            f"{r.files_present}/{r.files_expected}" if r.check else None,
            f"{r.bytes_present}/{r.bytes_expected}" if r.check else None,
            r.heal_attempts,
        ]
        for r in checks
    ]
    print_table(CHECK_COLUMNS, rows, right={"FILES", "BYTES", "HEALS"})
    from shared.verify.flow import WOULD_REMOVE

    for r in checks:
        details = [f"  {title}: {name}" for title, names in r.differences() for name in names]
        if r.reason and (r.status != "in_sync" or WOULD_REMOVE in r.reason):
            details.append(f"  {r.reason}")
        if details:
            print_line("")
            print_line(
                f"{r.run_id}  {(r.source.label if r.source else '-')}  {r.date or '-'}  → {r.destination or '-'}: {r.status.upper()}"
            )
            for line in details:
                print_line(line)
