"""``offsite restore-drill run|status DATASET``: the scheduled restore drill (shared/restore/drill.py).

``run`` publishes the ``restore-drills`` request that Cloud Scheduler sends on the dataset's
``restore_drill.schedule``; ``status`` (and ``offsite status``) shows each dataset's last
proven restore and its age.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import typer

from offsite.cli.common import ConfigOption, exit_on_error, load_cli_config, new_app
from offsite.cli.output import JsonOption, print_json, print_line, print_published
from shared.config import Config

app = new_app(no_args_is_help=True, help="Restore drills: prove on a schedule that copies restore.")


@app.command()
def run(
    dataset: Annotated[str, typer.Argument(help="A dataset of the config with a restore_drill.")],
    wait: Annotated[
        bool,
        typer.Option("--wait", help="Wait until every table of the drill's sample is restored and proven (or not)."),
    ] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds --wait waits at most.")] = 1800.0,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Start a restore drill of DATASET now (as its schedule does); see `offsite restore-drill status`.

    Exit 1 when the request could not be published, 2 for a dataset without a restore_drill.
    With --wait: exit 0 once every table of the sample is restore_verified; 1 when one is
    restore_failed, the drill found no in_sync run to restore, the function refused the request,
    or the timeout passed."""
    from shared.gcp import pubsub
    from shared.restore.drill_records import DrillRequest, drill_id_for, drill_of
    from shared.topology import RESTORE_DRILLS

    cfg = load_cli_config(config)
    published_at = dt.datetime.now(dt.UTC)
    with exit_on_error():
        drill_of(cfg, dataset)
        request = DrillRequest.from_obj({"dataset": dataset})
        message_id = pubsub.publish(RESTORE_DRILLS, request, origin="offsite-restore-drill")
    if not wait:
        print_published("restore drill", RESTORE_DRILLS, request, message_id, as_json)
        return
    if not as_json:
        print_line(f"published restore drill request {request.to_json().decode()} (message {message_id})")
    drill_id = drill_id_for(message_id)
    assert drill_id is not None, f"Pub/Sub answered message id {message_id!r}"
    outcome = wait_for_drill(cfg, dataset, drill_id, message_id, published_at, timeout, show=not as_json)
    if as_json:
        print_json({"message_id": message_id, "topic": RESTORE_DRILLS, **outcome})
    raise typer.Exit(0 if outcome["proven"] else 1)


def wait_for_drill(
    cfg: Config,
    dataset: str,
    drill_id: str,
    message_id: str,
    published_at: dt.datetime,
    timeout_s: float,
    *,
    show: bool,
) -> dict[str, Any]:
    """Follow the drill (shared.restore.drill_watch) until every table is reported, it has nothing
    to restore, its start was refused, or ``timeout_s`` passes, printing each table's line as it
    is reported. The outcome: ``dataset``, ``drill_id``, ``proven`` (every table
    restore_verified), ``complete``, ``tables`` [{table, run_id, status, reason}], ``error``."""
    from shared.restore import drill_watch

    def told(table: str, marker: dict[str, Any]) -> None:
        if show:
            print_line(_table_line(dataset, table, marker))

    progress = drill_watch.wait_for_drill(
        cfg, dataset, drill_id, message_id=message_id, since=published_at, timeout_s=timeout_s, on_table=told
    )
    outcome = progress.to_dict(waited_s=timeout_s)
    if show and outcome["error"] is not None:
        typer.echo(f"error: restore drill {dataset} {drill_id}: {outcome['error']}", err=True)
    elif show and not progress.proven:
        typer.echo(f"error: restore drill {dataset} {drill_id}: not every table restored equal", err=True)
    return outcome


def _table_line(dataset: str, table: str, marker: dict[str, Any]) -> str:
    """``sales.products run r…: restore_verified (equal …)``, as each table of the drill is reported."""
    line = f"{dataset}.{table} run {marker.get('run_id')}: {marker.get('status')}"
    return f"{line} ({marker['reason']})" if marker.get("reason") else line


@app.command()
def status(as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """Per dataset with a restore_drill: the last proven restore (run, table, when, age) and the last drill."""
    cfg = load_cli_config(config)
    from shared.restore.drill_records import status_rows

    rows = status_rows(cfg, dt.datetime.now(dt.UTC))
    if as_json:
        print_json(rows)
        return
    print_drills(rows)


def age_text(seconds: float) -> str:
    """``3d 4h``, ``5h 12m``, ``7m``: how old a proof is."""
    minutes = int(seconds // 60)
    days, hours = minutes // 1440, minutes // 60 % 24
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes % 60}m" if hours else f"{minutes}m"


def print_drills(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        proven, last = row["last_proven"], row["last"]
        if proven:
            line = (
                f"restore drill {row['dataset']}: last proven restore {row['dataset']}.{proven['table']} run {proven['run_id']} "
                f"from {proven['destination']} at {proven['at']} ({age_text(row['age_s'])} ago)"
            )
        else:
            line = f"restore drill {row['dataset']}: no proven restore yet"
        if last and last.get("status") != "restore_verified":
            line += f"; last drill {last['status']}: {last['table']} run {last['run_id']}: {last.get('reason') or ''}"
        print_line(line.rstrip())
