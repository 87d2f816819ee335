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
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Start a restore drill of DATASET now (as its schedule does); see `offsite restore-drill status`.

    Exit 1 when the request could not be published, 2 for a dataset without a restore_drill."""
    from shared.gcp import pubsub
    from shared.restore.drill import DrillRequest, drill_of
    from shared.topology import RESTORE_DRILLS

    cfg = load_cli_config(config)
    with exit_on_error():
        drill_of(cfg, dataset)
        request = DrillRequest.from_obj({"dataset": dataset})
        message_id = pubsub.publish(RESTORE_DRILLS, request, origin="offsite-restore-drill")
    print_published("restore drill", RESTORE_DRILLS, request, message_id, as_json)


@app.command()
def status(as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """Per dataset with a restore_drill: the last proven restore (run, table, when, age) and the last drill."""
    cfg = load_cli_config(config)
    rows = drill_rows(cfg, dt.datetime.now(dt.UTC))
    if as_json:
        print_json(rows)
        return
    print_drills(rows)


def drill_rows(cfg: Config, now: dt.datetime) -> list[dict[str, Any]]:
    from shared.restore.drill import read_record

    rows = []
    for entry in cfg.datasets:
        if entry.restore_drill is None:
            continue
        record = read_record(cfg, entry.name)
        proven, last = record.get("last_verified"), record.get("last")
        age = None
        if proven and proven.get("at"):
            age = (now - dt.datetime.fromisoformat(proven["at"])).total_seconds()
        rows.append({"dataset": entry.name, "last_proven": proven, "age_s": age, "last": last})
    return rows


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
