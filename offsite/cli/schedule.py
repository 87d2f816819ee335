"""``offsite schedule``: every Cloud Scheduler job the config makes, and when each fires next."""

from __future__ import annotations

import datetime as dt

import typer

from offsite.cli.common import ConfigOption, load_cli_config
from offsite.cli.output import JsonOption, print_json, print_table


def register(app: typer.Typer) -> None:
    """Add ``schedule`` to the main app."""
    app.command("schedule")(schedule)


def schedule(as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """The scheduled jobs (datasets, query exports, collect jobs, mirrors, restore drills, ingest,
    the sweeps): cron, time zone, the message published, the next run (a collect job's next
    business day)."""
    from shared.schedule import scheduled_jobs

    now = dt.datetime.now(dt.UTC)
    rows = [job.as_dict(now) for job in scheduled_jobs(load_cli_config(config))]
    if as_json:
        print_json(rows)
        return
    print_table(
        ("JOB", "SCHEDULE", "TIME ZONE", "TOPIC", "MESSAGE", "NEXT RUN"),
        [(r["job"], r["schedule"], r["time_zone"], r["topic"], r["message"], r["next_run"] or "-") for r in rows],
    )
