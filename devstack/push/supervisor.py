"""Keep function processes running: respawn a dead component, and watch the functions.

``devstack.stack`` saves how each component was launched in ``<root>/launches.json`` (argv,
the environment it adds to the caller's, working directory, health check) so a component can
be started again later, on the same port, by another process: the supervisor thread of the
push dispatcher (a function died), ``offsite dev restart NAME``, or ``offsite dev up`` on a
running stack. Every change of ``stack.json`` happens under the stack's lock (``<root>/.lock``),
the same lock ``up`` and ``down`` take, so two of them never restart the same process.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from devstack import health, procs
from devstack import state as stack_state
from devstack.errors import StackError
from devstack.launches import Launch
from devstack.plan import COMPONENT, MARKER
from devstack.push.dispatcher import log_event
from devstack.state import ComponentInfo, StackInfo

LAUNCHES_FILE = "launches.json"
CHECK_EVERY_S = 0.5
STABLE_S = 30.0  # alive this long after a restart: the next death restarts at once again
MAX_RESTART_DELAY_S = 30.0
RESTART_TIMEOUT_S = 60.0


@contextmanager
def locked(root: Path) -> Iterator[None]:
    """The stack's lock: one `up`/`down`/restart at a time per root (a second waits for the first)."""
    with open(Path(root) / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def save_launches(root: Path, launches: Mapping[str, Launch]) -> None:
    """Record how every component starts; only the environment added to ``os.environ`` is kept."""
    out = {}
    for name, launch in launches.items():
        raw = dataclasses.asdict(launch)
        raw["env"] = {k: v for k, v in launch.env.items() if os.environ.get(k) != v}
        raw["cwd"] = str(launch.cwd) if launch.cwd else None
        out[name] = raw
    path = Path(root) / LAUNCHES_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(out, fh, indent=2)
    tmp.replace(path)


def load_launches(root: Path) -> dict[str, Launch]:
    """The launches saved by :func:`save_launches` (environment: this process's, plus the saved part)."""
    try:
        raw = json.loads((Path(root) / LAUNCHES_FILE).read_text())
    except FileNotFoundError:
        return {}
    launches = {}
    for name, item in raw.items():
        item["env"] = {**os.environ, **item["env"]}
        item["cwd"] = Path(item["cwd"]) if item["cwd"] else None
        launches[name] = Launch(**item)
    return launches


def restart_loses(root: Path, name: str) -> str | None:
    """What restarting ``name`` loses, for components that keep their state in memory (None:
    nothing; fake-gcs-server, sshd and the Box server keep theirs on disk)."""
    launch = load_launches(Path(root)).get(name)
    if name == "bqemulator" and launch is not None and "--ephemeral" in launch.argv:
        return (
            "bqemulator kept its datasets and tables in memory: they are gone; `offsite dev seed` loads the"
            " samples again (set OFFSITE_DEV_BQ_MEMORY_LIMIT before `dev up` for a file-backed bqemulator)"
        )
    if name == "bigquery":
        return "the BigQuery front kept its jobs in memory: a job started before cannot be looked up again"
    if name == "drive":
        return "the Drive server kept its file and folder records in memory: what was delivered there is gone"
    return None


def _stop_leftovers(root: Path, name: str) -> None:
    """Processes of an earlier ``name`` still alive (e.g. gunicorn workers whose master was killed)."""
    for proc in procs.marked(MARKER, str(root)):
        try:
            if proc.environ().get(COMPONENT) == name and proc.pid != os.getpid():
                procs.stop(proc.pid, procs.start_time(proc))
        except Exception:  # noqa: BLE001 - it exited meanwhile
            continue


def respawn(info: StackInfo, name: str, timeout_s: float = RESTART_TIMEOUT_S) -> ComponentInfo:
    """Stop ``name`` if it runs, start it again on its port, wait until healthy; saves stack.json.

    The caller holds the stack's lock. StackError if there is no recorded launch or it does not
    become healthy (with the log tail).
    """
    launch = load_launches(info.root).get(name)
    if launch is None:
        raise StackError(f"no recorded launch for {name!r} in {info.root}", "restart the stack: dev down, dev up")
    comp = info.component(name)
    procs.stop(comp.pid, comp.create_time)
    _stop_leftovers(info.root, name)
    spawned = procs.spawn(name, launch.argv, log=Path(comp.log), env=launch.env, cwd=launch.cwd)
    comp.pid, comp.create_time, comp.health = spawned.pid, spawned.create_time, "starting"
    stack_state.save(info)
    health.wait_ready(comp, time.monotonic() + timeout_s, launch.fix_if_dead)
    stack_state.save(info)
    return comp


class Supervisor:
    """Restarts dead function processes of the stack at ``root``, with backoff on repeated deaths."""

    def __init__(self, root: Path, stop: threading.Event) -> None:
        self.root = Path(root)
        self.stop = stop
        self.failures: dict[str, int] = {}  # consecutive restarts that did not stay up
        self.next_try: dict[str, float] = {}
        self.up_since: dict[str, float] = {}
        self.restarts: dict[str, int] = {}  # total, for GET /stats

    def run(self) -> None:
        while not self.stop.wait(CHECK_EVERY_S):
            try:
                self.check_once()
            except Exception as exc:  # noqa: BLE001 - the supervisor must keep running
                log_event(action="supervise-error", note=repr(exc))

    def check_once(self) -> None:
        procs.reap_exited()
        try:
            info = stack_state.load(self.root)
        except StackError:
            return
        if info.state != "running":
            return
        now = time.monotonic()
        for comp in info.components:
            if comp.name not in info.functions:
                continue
            if procs.is_alive(comp.pid, comp.create_time):
                since = self.up_since.setdefault(comp.name, now)
                if now - since > STABLE_S:
                    self.failures[comp.name] = 0
                continue
            if now >= self.next_try.get(comp.name, 0.0):
                self._restart(comp.name)

    def _restart(self, name: str) -> None:
        failures = self.failures.get(name, 0)
        with locked(self.root):
            try:
                info = stack_state.load(self.root)
                comp = info.component(name)
            except (StackError, KeyError):
                return
            if info.state != "running" or procs.is_alive(comp.pid, comp.create_time):
                return  # stopped, or restarted by someone else meanwhile
            log_event(action="restart", component=name, dead_pid=comp.pid, failures=failures)
            try:
                comp = respawn(info, name)
                log_event(action="restarted", component=name, pid=comp.pid)
            except StackError as exc:
                log_event(action="restart-failed", component=name, note=str(exc))
        self.restarts[name] = self.restarts.get(name, 0) + 1
        self.failures[name] = failures + 1
        self.up_since.pop(name, None)
        self.next_try[name] = time.monotonic() + min(MAX_RESTART_DELAY_S, 0.5 * 2**failures)
