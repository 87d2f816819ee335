"""``offsite restore``: a delivered copy back into BigQuery, proven equal (shared/restore)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from offsite.cli.common import ConfigOption, exit_on_error, load_cli_config, operation_failed
from offsite.cli.output import JsonOption, print_json, print_line
from shared.errors import OffsiteError, TransientError

RunIdArgument = Annotated[
    str | None, typer.Argument(help="The run id whose copy is restored (or --table with --date).")
]
FromOption = Annotated[str, typer.Option("--from", help="Where the copy is: box, sftp:NAME, drive:NAME.")]
ToOption = Annotated[str, typer.Option("--to", help="The table to load: PROJECT.DATASET.TABLE.")]
StagingBucketOption = Annotated[
    str, typer.Option("--staging-bucket", help="A GCS bucket the files are staged in for the load job.")
]
DateOption = Annotated[
    str | None,
    typer.Option("--date", help="With --table: the newest complete run dated on or before YYYY-MM-DD."),
]
TableOption = Annotated[
    str | None, typer.Option("--table", help="Which table of the run: DATASET.TABLE, or the export name.")
]
WriteDispositionOption = Annotated[
    str, typer.Option("--write-disposition", help="empty (default), truncate or append.")
]
KeepStagingOption = Annotated[
    bool,
    typer.Option("--keep-staging", help="Keep the staged files (default: deleted once the load job is over)."),
]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="List what would be read and loaded; change nothing.")]


REQUIRED = {  # what each required option is, for the error that asks for it
    "--to": "the table to load, PROJECT.DATASET.TABLE (its dataset must exist)",
    "--staging-bucket": "a GCS bucket you can write to, where the files wait for the load job"
    " (deleted after it); none of offsite's own, so that a restore works with Google Cloud lost",
}


def register(app: typer.Typer) -> None:
    """Add this module's command to the main app."""
    app.command("restore")(restore)


def restore(
    run_id: RunIdArgument = None,
    source: FromOption = "box",
    to: ToOption = "",
    staging_bucket: StagingBucketOption = "",
    date: DateOption = None,
    table: TableOption = None,
    write_disposition: WriteDispositionOption = "empty",
    keep_staging: KeepStagingOption = False,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Read a run's files and manifest from a destination, check every SHA-1, stage them, load
    them with one job and the manifest's schema, then compare the table with the manifest. The
    staged files are deleted after the load job, whether it succeeded or not (--keep-staging keeps them).

    Exit 0 when the restored table equals the export (row count, schema, fingerprint), 1 when it
    differs, a file is damaged (nothing loaded), a service could not be reached (try again) or
    refused (e.g. BigQuery: access denied), 2 on bad input or when the run is not found.
    """
    from shared.destinations import factory
    from shared.restore import restore as restoring

    cfg = load_cli_config(config)
    as_of = _checked_inputs(date, to=to, staging_bucket=staging_bucket, disposition=write_disposition)
    loading = False
    try:
        with factory.opened(source, cfg) as destination:
            plan = restoring.plan(
                destination,
                run_id,
                target=to,
                staging_bucket=staging_bucket,
                table=table,
                disposition=write_disposition,
                as_of=as_of,
            )
            if dry_run:
                _show(plan.to_dict(), as_json, "would restore")
                return
            loading = True
            result = restoring.execute(destination, plan, keep_staging=keep_staging)
    except (OffsiteError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exit_code(exc, loading=loading)) from None
    summary = result.to_dict()
    _show(summary, as_json, "restored")
    if keep_staging and not as_json:  # this invocation's own folder (--json lists every file under "staging")
        print_line(f"  staged files kept under gs://{plan.staging_bucket}/{plan.staging_folder}/")
    if result.proof is not None and not result.proof.equal:
        raise typer.Exit(1)


def exit_code(exc: Exception, *, loading: bool) -> int:
    """1 when the input was fine but the restore did not succeed, 2 for bad input (the CLI's policy,
    :func:`offsite.cli.common.operation_failed`).

    Always 1: a damaged file, the time running out, a service that cannot be reached now (try
    again), a destination that refuses (Box or the SFTP server answering "access denied" while
    the run is looked for). Bad input is 2 (RejectedInput, ConfigError): the run is not found,
    ``--table``/``--date`` names nothing, the source cannot be read back; from staging on, a
    target that already has rows under ``empty`` or whose dataset does not exist. A refusal from
    staging on (BigQuery's 403 on the target dataset, a failed load job) is 1; a staging bucket
    that does not exist is 2 (ObjectMissing: no other object is read from GCS)."""
    from shared.gcp.gcs import ObjectMissing
    from shared.restore.stage import DamagedFile, OutOfTime

    if isinstance(exc, (DamagedFile, OutOfTime, TransientError)):
        return 1
    if not isinstance(exc, OffsiteError) or (loading and isinstance(exc, ObjectMissing)):
        return 2
    return 1 if operation_failed(exc) else 2


def _checked_inputs(date: str | None, *, to: str, staging_bucket: str, disposition: str) -> dt.date | None:
    """The --date as a date; exit 2 naming the option when an option is wrong or a required one
    is empty, before any destination is opened."""
    from shared.restore.load import check_disposition, parse_target

    try:
        as_of = dt.date.fromisoformat(date) if date else None
    except ValueError:
        typer.echo(f"error: restore --date: {date!r} is not a date (expected YYYY-MM-DD)", err=True)
        raise typer.Exit(2) from None
    for option, value in (("--to", to), ("--staging-bucket", staging_bucket)):
        if not value:
            typer.echo(f"error: restore {option} is required: {REQUIRED[option]}", err=True)
            raise typer.Exit(2)
    with exit_on_error(2):
        parse_target(to)
        check_disposition(disposition)
    return as_of


def _show(summary: dict, as_json: bool, verb: str) -> None:
    if as_json:
        print_json(summary)
        return
    print_line(f"{verb} run {summary['run_id']} ({summary['source']}, {summary['date']}) → {summary['to']}")
    print_line(
        f"  manifest {summary['manifest']}: {summary['rows']} rows, {len(summary['files'])} {summary['format']} file(s)"
    )
    for f in summary["files"]:
        print_line(f"  {f['path']}  {f['size']} bytes  sha1 {f['sha1']}")
    if "equal" in summary and summary["equal"] is not None:
        state = "EQUAL" if summary["equal"] else "DIFFERENT"
        checked = "row count, schema, fingerprint" if summary["fingerprint_checked"] else "row count, schema"
        print_line(f"  {state} ({checked}): {summary['restored_rows']} rows")
        for problem in summary["problems"]:
            print_line(f"    {problem}")
