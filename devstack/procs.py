"""Processes the stack starts: spawn detached, recognise later by (pid, start time), stop with children.

A process is identified by its pid *and* its start time, so a recycled pid is never
mistaken for ours and never killed. Stopping walks the process's children (gunicorn
workers, sshd session processes) and ends exactly those pids.

The start time is counted from boot (:func:`start_time`), not on the wall clock: psutil's
``create_time()`` adds the boot time as the wall clock reckons it now, so when a VM's clock
is stepped (resumed from a pause, NTP) every process's ``create_time`` moves. The push
supervisor then took every live function for dead and restarted it, ending its requests (502).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from devstack.errors import StackError

# Popen objects of processes started by this interpreter: kept so they are reaped on stop
# (no zombies, no "still running" ResourceWarning when they are garbage-collected).
_STARTED: dict[int, subprocess.Popen] = {}


@dataclass
class Spawned:
    name: str
    pid: int
    create_time: float
    log: Path
    popen: subprocess.Popen | None = None  # only in the process that started it


def spawn(
    name: str, argv: Sequence[str], *, log: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Spawned:
    """Start ``argv`` in its own session (it outlives the caller), output appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(map(str, argv))}\n".encode())
        out.flush()
        try:
            popen = subprocess.Popen(
                [str(a) for a in argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=str(cwd) if cwd else None,
                start_new_session=True,  # Ctrl-C in the terminal that ran `up` must not stop the stack
            )
        except OSError as exc:
            raise StackError(f"{name}: cannot run {argv[0]}: {exc.strerror}", "install it or fix the path") from None
    _STARTED[popen.pid] = popen
    try:
        created = start_time(psutil.Process(popen.pid))
    except psutil.NoSuchProcess:
        created = 0.0
    return Spawned(name, popen.pid, created, log, popen)


EPOCH_LIKE = 1e9  # a start time recorded as seconds since 1970 by an older stack.json (2001 onwards)


def start_time(proc: psutil.Process) -> float:
    """When ``proc`` started, in seconds since boot (``/proc/PID/stat`` field 22, clock ticks):
    unlike ``create_time()`` it never moves when the wall clock is set."""
    try:
        with open(f"/proc/{proc.pid}/stat", "rb") as fh:
            stat = fh.read()
    except FileNotFoundError:
        raise psutil.NoSuchProcess(proc.pid) from None
    after_name = stat[stat.rindex(b")") + 2 :].split()  # the name may hold spaces and parentheses
    return int(after_name[19]) / os.sysconf("SC_CLK_TCK")


def process(pid: int, create_time: float) -> psutil.Process | None:
    """The live process with this pid and start time, or None (exited, or the pid was reused)."""
    try:
        proc = psutil.Process(pid)
        started = proc.create_time() if create_time > EPOCH_LIKE else start_time(proc)
        if create_time and abs(started - create_time) > 1.0:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def is_alive(pid: int, create_time: float) -> bool:
    return process(pid, create_time) is not None


def tree(proc: psutil.Process) -> list[psutil.Process]:
    """The process and all its descendants."""
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def kill_tree(proc: psutil.Process) -> None:
    """SIGKILL the process and its descendants, as a crash ends them."""
    _kill(tree(proc))


def _kill(procs: list[psutil.Process]) -> None:
    """SIGKILL each; one that ended meanwhile (a child that exits once its parent is killed) is fine."""
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def listening_ports(pid: int, create_time: float) -> set[int]:
    """TCP ports the process (or one of its children) listens on."""
    proc = process(pid, create_time)
    ports: set[int] = set()
    for p in tree(proc) if proc else []:
        try:
            conns = p.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        ports.update(c.laddr.port for c in conns if c.status == psutil.CONN_LISTEN)
    return ports


def stop(pid: int, create_time: float, *, grace_s: float = 5.0) -> list[int]:
    """Terminate the process and its descendants; kill what is left after ``grace_s``.

    Returns the pids that were signalled. Pids that are not ours (start time differs) are
    left alone.
    """
    return stop_together([(pid, create_time)], grace_s=grace_s)[0]


def stop_together(targets: Sequence[tuple[int, float]], *, grace_s: float = 5.0) -> list[list[int]]:
    """:func:`stop` for several processes at once: every tree is signalled first, then all are
    awaited together, so stopping N processes costs the slowest one's exit, not the sum (a
    stack's dozen gunicorns each take ~1 s to shut down gracefully). Returns, per target, the
    pids that were signalled."""
    trees: list[list[psutil.Process]] = []
    for pid, create_time in targets:
        proc = process(pid, create_time)
        trees.append(tree(proc) if proc is not None else [])
    everyone = [p for procs in trees for p in procs]
    for p in everyone:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(everyone, timeout=grace_s)
    _kill(alive)
    psutil.wait_procs(alive, timeout=grace_s)
    for pid, _ in targets:
        _reap(pid)
    return [[p.pid for p in procs] for procs in trees]


def marked(marker: str, value: str) -> list[psutil.Process]:
    """Live processes whose environment has ``marker=value`` (every stack process carries its root)."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get(marker) == value and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
    return found


def _reap(pid: int) -> None:
    """Collect the exit status when the caller is the parent (avoids zombies in test runs)."""
    popen = _STARTED.pop(pid, None)
    if popen is not None:
        try:
            popen.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass
        return
    try:
        os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, OSError):
        pass


def log_tail(log: Path, lines: int = 20) -> str:
    try:
        with open(log, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 16384))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def reap_exited() -> None:
    """Collect every child this interpreter started that has exited (so none stays a zombie)."""
    for pid, popen in list(_STARTED.items()):
        if popen.poll() is not None:
            _STARTED.pop(pid, None)
