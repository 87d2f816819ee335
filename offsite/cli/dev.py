"""offsite dev up | status | down | logs — the local stack (devstack.stack) from the terminal.

State lives in ``.offsite/`` of the current directory (``--root`` to choose another):
stack.json, env (``. .offsite/env``), config.yaml, keys, data and ``logs/<component>.log``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from devstack.errors import StackError
from devstack.health import START_TIMEOUT_S
from devstack.state import StackInfo
from offsite.cli.common import new_app
from offsite.cli.output import JsonOption, print_json, print_line, print_table

app = new_app(no_args_is_help=True)

DEFAULT_ROOT = Path(".offsite")
ROOT_HELP = "Stack state directory (default: .offsite in the current directory)."
RootOption = Annotated[Path | None, typer.Option("--root", help=ROOT_HELP)]


def _root(root: Path | None) -> Path:
    return (root or Path(os.environ.get("OFFSITE_DEV_ROOT", DEFAULT_ROOT))).absolute()


def _fail(exc: StackError) -> None:
    typer.echo(f"error: {exc}", err=True)
    if exc.log_tail:
        typer.echo("  " + exc.log_tail.replace("\n", "\n  "), err=True)
    raise typer.Exit(1)


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _print_stack(info: StackInfo) -> None:
    print_line(f"offsite local stack in {info.root} (project {info.project}, bucket {info.bucket})")
    rows = []
    for comp in info.components:
        note = comp.note
        if comp.name == "sftp":
            note = f"{info.sftp.backend}, user {info.sftp.username}" + (f"; {comp.note}" if comp.note else "")
        extra = " ".join(f"{k}:{v}" for k, v in comp.ports.items())
        rows.append([comp.name, f"127.0.0.1:{comp.port}", extra, str(comp.pid), comp.health, note])
    print_table(("COMPONENT", "ADDRESS", "MORE PORTS", "PID", "HEALTH", "NOTE"), rows, right={"PID"})
    print_line(f"environment: . {info.env_file}")
    print_line(f"config:      {info.config_path}")


def stack_json(info: StackInfo) -> dict[str, object]:
    """The stack as ``dev status --json`` prints it."""
    comps = [
        {
            "name": c.name,
            "port": c.port,
            "pid": c.pid,
            "health": c.health,
            "note": c.note,
            "ports": c.ports,
            "log": c.log,
        }
        for c in info.components
    ]
    healthy = all(c.health == "ok" for c in info.components)
    return {
        "running": healthy,
        "root": str(info.root),
        "state": info.state,
        "components": comps,
        "sftp_backend": info.sftp.backend,
        "env": info.env,
    }


@app.command()
def up(
    config: Annotated[Path | None, typer.Option("--config", help="YAML deep-merged over the generated config.")] = None,
    functions: Annotated[
        str | None, typer.Option("--functions", help="Comma-separated functions to start (default: all).")
    ] = None,
    no_functions: Annotated[bool, typer.Option("--no-functions", help="Start the components only.")] = False,
    without: Annotated[
        str | None, typer.Option("--without", help="Leave out optional components: bigquery,sftp,box,drive,webhook.")
    ] = None,
    sftp: Annotated[
        str | None, typer.Option("--sftp", help="SFTP server: auto (default), openssh or asyncssh.")
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for every component to become healthy.")
    ] = START_TIMEOUT_S,
    as_json: JsonOption = False,
    root: RootOption = None,
) -> None:
    """Start the local stack (or report the one already running)."""
    from devstack.stack import is_running, load_stack, start_stack

    where = _root(root)
    if no_functions and functions:
        _fail(StackError("--functions and --no-functions exclude each other", "pass one of them"))
    chosen: bool | list[str] = False if no_functions else (_split(functions) or True)
    try:
        try:
            already = is_running(load_stack(where))
        except StackError:
            already = False
        info = start_stack(
            where,
            functions=chosen,
            without=_split(without),
            config_overlay=config,
            sftp_backend=sftp,
            timeout_s=timeout,
        )
    except StackError as exc:
        _fail(exc)
        return
    if as_json:
        print_json({**stack_json(info), "already_running": already})
        return
    if already:
        print_line("already running; `offsite dev down` stops it")
    _print_stack(info)


@app.command()
def status(
    as_json: JsonOption = False,
    root: RootOption = None,
) -> None:
    """Every component with its port, pid and health, measured now."""
    from devstack.stack import status as stack_status

    try:
        info = stack_status(_root(root))
    except StackError as exc:
        if as_json:
            print_json({"running": False, "root": str(_root(root)), "components": []})
            raise typer.Exit(1) from None
        _fail(exc)
        return
    healthy = all(c.health == "ok" for c in info.components)
    if as_json:
        print_json(stack_json(info))
    else:
        _print_stack(info)
    if not healthy:
        raise typer.Exit(1)


@app.command()
def down(as_json: JsonOption = False, root: RootOption = None) -> None:
    """Stop every process `up` started (and their children); nothing else."""
    from devstack.stack import stop_stack

    stopped = stop_stack(_root(root))
    if as_json:
        print_json({"stopped": list(stopped)})
        return
    print_line(f"stopped: {', '.join(stopped)}" if stopped else "nothing running")


@app.command()
def logs(
    component: Annotated[str | None, typer.Argument(help="Component name (default: all).")] = None,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing new lines.")] = False,
    lines: Annotated[int, typer.Option("-n", "--lines", help="Lines of each log to show first.")] = 40,
    as_json: Annotated[
        bool, typer.Option("--json", help='One JSON object per log line: {"component": …, "line": …} (also with -f).')
    ] = False,
    root: RootOption = None,
) -> None:
    """Show component logs from .offsite/logs/."""
    log_dir = _root(root) / "logs"
    files = sorted(log_dir.glob("*.log"))
    if component:
        files = [f for f in files if f.stem == component]
        if not files:
            known = ", ".join(f.stem for f in sorted(log_dir.glob("*.log"))) or "none yet"
            _fail(StackError(f"no log for component {component!r} in {log_dir}", f"choose one of: {known}"))
    if not files:
        _fail(StackError(f"no logs in {log_dir}", "start the stack with `offsite dev up`"))

    def show(path: Path, text: list[str]) -> None:
        if as_json:  # JSON lines, not one document: a followed log has no end
            out = "".join(json.dumps({"component": path.stem, "line": line}) + "\n" for line in text)
        else:
            prefix = f"{path.stem}| " if len(files) > 1 else ""
            out = "".join(prefix + line + "\n" for line in text)
        sys.stdout.write(out)
        sys.stdout.flush()

    positions = {}
    for path in files:
        text, positions[path] = _lines_from(path, 0, whole_only=follow)
        show(path, text[-lines:] if lines > 0 else [])
    while follow:
        time.sleep(0.3)
        for path in files:
            size = path.stat().st_size if path.exists() else 0
            if size < positions[path]:
                positions[path] = 0  # truncated or replaced
            if size > positions[path]:
                text, positions[path] = _lines_from(path, positions[path], whole_only=True)
                show(path, text)


def _lines_from(path: Path, start: int, *, whole_only: bool) -> tuple[list[str], int]:
    """The lines of ``path`` from byte ``start``, and the byte to go on from. ``whole_only`` (when
    following): a last line still being written is left for the next read."""
    with open(path, "rb") as fh:
        fh.seek(start)
        data = fh.read()
    end = data.rfind(b"\n") + 1 if whole_only else len(data)
    return data[:end].decode("utf-8", "replace").splitlines(), start + end


@app.command()
def seed(as_json: JsonOption = False, root: RootOption = None) -> None:
    """Load the sample BigQuery dataset `sales` (orders, customers, products) into the running stack,
    create the scratch dataset its restore drill loads into, put sample objects into its mirrored
    buckets (docs/mirror.md), create the sample SQLite app (`offsite ingest`), and put sample
    partner files in the outbox of the collect job `toast` (the stack's sshd)."""
    from devstack.collect_seed import seed_partner_files
    from devstack.demo import create_drill_scratch, seed_mirrored_buckets, seed_sample_data
    from devstack.stack import load_stack

    try:
        info = load_stack(_root(root))
    except StackError as exc:
        _fail(exc)
        return
    rows = seed_sample_data(info)
    scratch = create_drill_scratch(info)
    objects = seed_mirrored_buckets(info)
    from devstack import sample_app

    app_db = Path(info.root) / "app.db"
    app_rows = sample_app.create(app_db)
    partner_files = [str(p) for p in seed_partner_files(info)]
    if as_json:
        print_json(
            {
                "project": info.project,
                "dataset": "sales",
                "rows": rows,
                "drill_scratch": scratch,
                "mirrored_buckets": objects,
                "sqlite": str(app_db),
                "sqlite_rows": app_rows,
                "partner_files": partner_files,
            }
        )
        return
    print_line("seeded " + ", ".join(f"{info.project}.sales.{t} ({n:,} rows)" for t, n in rows.items()))
    for name in scratch:
        print_line(f"created {name} (the scratch dataset of a restore drill: offsite restore-drill run)")
    for bucket, count in objects.items():
        print_line(f"seeded gs://{bucket} ({count} objects, mirrored by upload_box and transfer_sftp)")
    print_line(f"seeded SQLite app {app_db}: " + ", ".join(f"{t} ({n:,} rows)" for t, n in app_rows.items()))
    print_line(f"partner files for collect job toast: {', '.join(partner_files)}")


@app.command()
def restart(
    component: Annotated[str, typer.Argument(help="A function (e.g. transfer_sftp) or another component, not pubsub.")],
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait until it is healthy.")] = START_TIMEOUT_S,
    as_json: JsonOption = False,
    root: RootOption = None,
) -> None:
    """Stop one component of the running stack and start it again on the same port (Pub/Sub state
    kept). A component that keeps its state in memory (bqemulator unless file-backed, the Drive
    server, the BigQuery front's jobs) starts empty: a note says what was lost."""
    from devstack.push.supervisor import restart_loses
    from devstack.stack import restart_component

    try:
        lost = restart_loses(_root(root), component)
        info = restart_component(_root(root), component, timeout_s=timeout)
    except StackError as exc:
        _fail(exc)
        return
    comp = info.component(component)
    if as_json:
        print_json({"restarted": comp.name, "port": comp.port, "pid": comp.pid, "health": comp.health, "lost": lost})
        return
    typer.echo(f"restarted {comp.name}: 127.0.0.1:{comp.port} pid {comp.pid} {comp.health}")
    if lost:
        typer.echo(f"note: {lost}")


def _register_token() -> None:
    from offsite.cli.dev_token import token

    app.command("token")(token)


_register_token()
