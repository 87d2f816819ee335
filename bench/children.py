"""Measuring in a child process: peak RSS of its process tree, and the child protocol.

A Python child (:func:`python_child`) runs ``module:function(**kwargs)`` in a fresh interpreter;
the function calls :func:`mark_start` right before the measured work, which reports its baseline
RSS (the process after imports, clients and set-up) and starts the clock. The parent
(:func:`run_child`) samples the RSS of the child's whole process tree with psutil. Memory figures
are "peak − baseline", the memory the measured work itself needed.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import psutil

MARK = "@@bench "  # stdout prefix of the child protocol (start / result lines)
BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent


# ---- a process tree's memory and CPU -------------------------------------------------------


def _children_of(pid: int) -> list[int] | None:
    """``pid``'s children as the kernel lists them per thread (``/proc/PID/task/TID/children``);
    None where the kernel has no such file."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []  # gone
    children: list[int] = []
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                children.extend(int(c) for c in fh.read().split())
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{tid}"):
                continue  # the thread ended meanwhile
            return None
        except OSError:
            continue
    return children


def _descendants(root: psutil.Process) -> list[psutil.Process]:
    """``root``'s live descendants. From the kernel's per-thread lists: psutil's
    ``children(recursive=True)`` reads every process's stat to find them (20 ms a call among the
    local stack's ~130 processes, against 1.4 ms), and at 50 samples a second that scan took a
    fifth of a core from the stack being measured."""
    found: list[psutil.Process] = []
    todo = [root.pid]
    while todo:
        children = _children_of(todo.pop())
        if children is None:
            return list(root.children(recursive=True))
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                found.append(psutil.Process(child))
                todo.append(child)
    return found


def _tree_sum(pid: int, of: Callable[[psutil.Process], float]) -> float:
    """``of(process)`` summed over ``pid`` and its live descendants (processes that vanish count 0)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *_descendants(root)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            total += of(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants now. A child that has not called exec
    yet (``subprocess`` starting ``ssh``: vfork, or fork's copy-on-write) shows its parent's
    pages as its own RSS; it is left out, or a sample taken in that instant counts the parent
    twice (+77 MB peaks in one run of three of the SFTP bench, 2026-12-05)."""
    return int(_tree_sum(pid, lambda proc: 0 if _not_yet_exec(proc) else proc.memory_info().rss))


def _not_yet_exec(proc: psutil.Process) -> bool:
    """Whether ``proc`` still runs its parent's program image (same command line: not exec'd)."""
    parent = proc.parent()
    return parent is not None and proc.pid != parent.pid and proc.cmdline() == parent.cmdline()


def _cpu_with_reaped(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system + t.children_user + t.children_system)


def tree_cpu_s(pid: int) -> float:
    """CPU-seconds ``pid`` and its live descendants have used, with those of the children they
    reaped (0 when it is gone): a difference over a span is the tree's CPU in it."""
    return _tree_sum(pid, _cpu_with_reaped)


class RssSampler:
    """Samples the RSS of a process tree on a background thread; ``peak`` is the highest sample.

    ``reset_peak()`` starts a new window (e.g. at the start marker) so set-up that allocated more
    than the transfer does not hide the transfer's own peak; ``peak_total`` keeps the life-long one.
    """

    def __init__(self, pid: int, interval_s: float = 0.01) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.peak = 0
        self.peak_total = 0
        self.samples = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name=f"rss-{pid}", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def sample(self) -> int:
        rss = tree_rss(self.pid)
        with self._lock:
            self.samples += 1
            self.peak = max(self.peak, rss)
            self.peak_total = max(self.peak_total, rss)
        return rss

    def reset_peak(self) -> int:
        with self._lock:
            self.peak = 0
        return self.sample()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)


def machine_cpu_s() -> float:
    """CPU-seconds the whole machine has been busy since boot, every core and process together.

    A difference over a span counts what no process tree shows: short-lived processes (``ssh``,
    ``sha1sum``, sshd's sessions), the emulators and the kernel's own work for them.
    """
    t = psutil.cpu_times()
    return float(sum(getattr(t, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq", "steal")))


# ---- child processes -----------------------------------------------------------------------


@dataclass
class ChildRun:
    """One measured child process: seconds from its start marker (or spawn) to its end, and memory."""

    seconds: float
    peak_rss: int  # bytes, highest tree RSS after the start marker
    baseline_rss: int | None  # bytes the child reported at the start marker; None for non-Python tools
    result: dict[str, Any] = field(default_factory=dict)
    machine_cpu_s: float = 0.0  # busy CPU-s of the whole machine, start marker (or spawn) to the end of the work

    @property
    def rss_over_baseline(self) -> int:
        return self.peak_rss - (self.baseline_rss or 0)


class ChildFailed(RuntimeError):
    pass


def run_child(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout_s: float = 1800.0,
    interval_s: float = 0.01,
    stdin: Any = None,
) -> ChildRun:
    """Run ``argv``, sampling its process tree's RSS, and follow the ``@@bench`` protocol on stdout.

    A child that prints no start marker (``sftp``, ``rclone``) is timed from spawn to exit and has no
    baseline. Raises :class:`ChildFailed` with the tail of stderr when the child exits non-zero.
    """
    with tempfile.TemporaryFile(mode="w+") as err:
        spawned, cpu_at_start = time.perf_counter(), machine_cpu_s()
        proc = subprocess.Popen(
            list(argv), stdout=subprocess.PIPE, stderr=err, stdin=stdin, text=True, env=env, cwd=cwd, bufsize=1
        )
        killer = threading.Timer(timeout_s, proc.kill)
        killer.start()
        baseline: int | None = None
        started = spawned
        result: dict[str, Any] = {}
        with RssSampler(proc.pid, interval_s) as sampler:
            assert proc.stdout is not None
            for line in proc.stdout:
                if not line.startswith(MARK):
                    continue
                kind, _, payload = line[len(MARK) :].strip().partition(" ")
                if kind == "start":
                    baseline = int(json.loads(payload)["rss"])
                    started, cpu_at_start = time.perf_counter(), machine_cpu_s()
                    sampler.reset_peak()
                elif kind == "result":
                    result = json.loads(payload)
            proc.wait()
            ended, cpu_used = time.perf_counter(), machine_cpu_s() - cpu_at_start
            peak = max(sampler.peak, baseline or 0)
        killer.cancel()
        if proc.returncode != 0:
            err.seek(0)
            tail = err.read()[-3000:]
            raise ChildFailed(f"{argv[0]} {' '.join(argv[1:3])} … exited {proc.returncode}:\n{tail}")
    seconds = float(result["seconds"]) if "seconds" in result else ended - started
    cpu_used = float(result.get("machine_cpu_s", cpu_used))
    return ChildRun(seconds=seconds, peak_rss=peak, baseline_rss=baseline, result=result, machine_cpu_s=cpu_used)


def python_child(target: str, **kwargs: Any) -> list[str]:
    """argv running ``module:function(**kwargs)`` in a fresh interpreter under the child protocol.

    The function calls :func:`mark_start` before the measured work and returns a JSON-able dict.
    """
    return [sys.executable, str(Path(__file__).resolve()), "--child", target, json.dumps(kwargs)]


# The start time lives in the environment, not a module global: the target may import this module as
# ``common`` or ``bench.common`` while the runner is ``__main__`` — three module objects, one process.
_STARTED_ENV = "OFFSITE_BENCH_STARTED_AT"
_CPU_AT_START_ENV = "OFFSITE_BENCH_MACHINE_CPU_AT_START"


def mark_start() -> None:
    """In a child: the measured work starts now; report this process's RSS as the baseline."""
    rss = psutil.Process().memory_info().rss
    print(f"{MARK}start {json.dumps({'rss': rss})}", flush=True)
    os.environ[_STARTED_ENV] = repr(time.perf_counter())
    os.environ[_CPU_AT_START_ENV] = repr(machine_cpu_s())


def _child_main(target: str, kwargs_json: str) -> None:
    for path in (str(REPO_ROOT), str(BENCH_DIR)):
        if path not in sys.path:
            sys.path.insert(0, path)
    module_name, _, func_name = target.partition(":")
    func = getattr(importlib.import_module(module_name), func_name)
    result = dict(func(**json.loads(kwargs_json)) or {})
    started = os.environ.get(_STARTED_ENV)
    if "seconds" not in result and started is not None:
        result["seconds"] = time.perf_counter() - float(started)
    cpu_at_start = os.environ.get(_CPU_AT_START_ENV)
    if cpu_at_start is not None:  # the work's span, without the interpreter's exit
        result["machine_cpu_s"] = machine_cpu_s() - float(cpu_at_start)
    print(f"{MARK}result {json.dumps(result)}", flush=True)


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "--child":
    _child_main(sys.argv[2], sys.argv[3])
