"""``offsite prune``: apply the configured ``retention`` at the destinations now.

The same code the verify sweep runs once a day (shared.retention.prune); ``--dry-run`` shows
what would be removed and changes nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer

from offsite.cli.common import ConfigOption, exit_on_error, load_cli_config
from offsite.cli.output import JsonOption, human_bytes, print_json, print_line, print_table

COLUMNS = ("ENTRY", "DESTINATION", "FOLDER", "DATE", "ACTION", "FILES", "SIZE", "WHY")


def register(app: typer.Typer) -> None:
    """Add ``prune`` to the main app."""
    app.command("prune")(prune)


def prune(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be removed; change nothing.")] = False,
    dataset: Annotated[str | None, typer.Option("--dataset", help="Only this configured dataset.")] = None,
    export: Annotated[str | None, typer.Option("--export", help="Only this configured query export.")] = None,
    bucket: Annotated[
        str | None, typer.Option("--bucket", help="Only this mirrored bucket's _offsite_versions/ folders.")
    ] = None,
    destination: Annotated[
        str | None, typer.Option("--destination", "-d", help="Only this destination (box, sftp:NAME).")
    ] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Remove run folders older than each entry's `retention` at its destinations, each only once
    a newer run of the same table is in_sync there, and mirrored buckets' dated
    `_offsite_versions/` folders, each only while the bucket's latest reconcile there is in_sync;
    every removal is reported as `pruned`.

    Exit 0 when done (also when nothing was to prune), 1 when a destination or service could not
    be reached or refused (try again), 2 on a bad option or configuration.
    """
    from shared.retention.prune import prune as apply

    cfg = load_cli_config(config)
    with exit_on_error():
        summary = apply(cfg, dry_run=dry_run, dataset=dataset, export=export, destination=destination, bucket=bucket)
    if as_json:
        print_json(
            {
                "dry_run": dry_run,
                "outcomes": [dataclasses.asdict(o) for o in summary.outcomes],
                "skipped": summary.skipped,
            }
        )
        return
    for line in summary.skipped:
        print_line(line)
    if not summary.outcomes:
        print_line("nothing to prune: no run or versions folders of entries with a retention policy were found")
        return
    rows = [
        [o.entry, o.destination, o.path, o.date, o.action, o.files, human_bytes(o.bytes), o.why]
        for o in summary.outcomes
    ]
    print_table(COLUMNS, rows, right={"FILES", "SIZE"})
    verb = "would prune" if dry_run else "pruned"
    done = summary.count("prune") if dry_run else summary.count("pruned")
    print_line(
        f"{verb} {done} run folder(s); kept {summary.count('keep')}, protected {summary.count('protect')}"
        + (f", deferred {summary.count('deferred')}" if summary.count("deferred") else "")
    )
