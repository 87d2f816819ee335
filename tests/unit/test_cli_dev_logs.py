"""`offsite dev logs`: the last lines of each component's log, plain or as JSON lines, and
`--follow` printing only whole lines (a line still being written waits for its end)."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

from typer.testing import CliRunner

from offsite.cli import app

ROOT = Path(__file__).resolve().parents[2]


def _logs_dir(tmp_path: Path) -> Path:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "relay.log").write_text("r1\nr2\nr3\n")
    (logs / "push.log").write_text('p1\n{"event": "pushed", "n": 2}\n')
    return logs


def test_the_last_lines_of_every_log_plain_and_as_json_lines(tmp_path: Path) -> None:
    _logs_dir(tmp_path)
    plain = CliRunner().invoke(app, ["dev", "logs", "-n", "2", "--root", str(tmp_path)])
    assert plain.exit_code == 0, plain.output
    assert plain.stdout.splitlines() == ["push| p1", 'push| {"event": "pushed", "n": 2}', "relay| r2", "relay| r3"]
    one = CliRunner().invoke(app, ["dev", "logs", "relay", "-n", "1", "--root", str(tmp_path)])
    assert one.stdout == "r3\n"
    as_json = CliRunner().invoke(app, ["dev", "logs", "-n", "1", "--json", "--root", str(tmp_path)])
    assert as_json.exit_code == 0, as_json.output
    assert [json.loads(line) for line in as_json.stdout.splitlines()] == [
        {"component": "push", "line": '{"event": "pushed", "n": 2}'},
        {"component": "relay", "line": "r3"},
    ]


def _lines(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    """The process's output lines as they come (a thread reads them: no select on a buffered pipe)."""
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or ()], daemon=True).start()
    return lines


def _next(lines: queue.Queue[str], timeout_s: float) -> object:
    return json.loads(lines.get(timeout=timeout_s))


def test_follow_prints_new_whole_lines_only(tmp_path: Path) -> None:
    logs = _logs_dir(tmp_path)
    cmd = [
        sys.executable,
        "-m",
        "offsite.cli",
        "dev",
        "logs",
        "relay",
        "-f",
        "--json",
        "-n",
        "1",
        "--root",
        str(tmp_path),
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "NO_COLOR": "1"})
    lines = _lines(proc)
    try:
        assert _next(lines, 30) == {"component": "relay", "line": "r3"}
        with open(logs / "relay.log", "a") as log:
            log.write("half a li")
            log.flush()
            time.sleep(1.0)  # more than the follower's poll (0.3 s): it has seen the partial line
            assert lines.empty(), f"a partial line was printed before its end: {lines.get()!r}"
            log.write("ne\nr5\n")
        assert _next(lines, 10) == {"component": "relay", "line": "half a line"}
        assert _next(lines, 10) == {"component": "relay", "line": "r5"}
    finally:
        proc.kill()
        proc.wait(timeout=10)
