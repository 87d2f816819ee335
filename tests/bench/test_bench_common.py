"""bench/common.py's pure helpers: median, the RSS sampler on a real child process, table and JSON output.

No timing assertions: only memory (with generous bounds) and the shape of the output.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import pytest

from bench import children, common, stack_watch
from bench.children import ChildFailed, python_child, run_child
from bench.common import Row, format_table, median, read_json, write_json
from devstack import procs

ALLOCATE_BYTES = 200 * common.MB


def allocate_and_hold(size: int, hold_s: float) -> dict:
    """Child target: the baseline is taken, then ``size`` bytes are allocated and touched, then held."""
    children.mark_start()
    block = b"x" * size  # every page written, so all of it is resident
    time.sleep(hold_s)  # long enough for many 10 ms samples
    return {"allocated": len(block)}


def test_median_of_odd_and_even_runs() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert median([7]) == 7.0


def test_median_of_no_runs_says_so() -> None:
    with pytest.raises(ValueError, match="no runs"):
        median([])


def test_repeat_runs_at_least_once_and_keeps_order() -> None:
    counter = iter(range(10))
    assert common.repeat(lambda: next(counter), 3) == [0, 1, 2]
    assert common.repeat(lambda: "x", 0) == ["x"]


def test_in_turns_rotates_who_goes_first_and_keeps_each_sides_figures() -> None:
    calls: list[tuple[str, int]] = []

    def measure(side: str, i: int) -> tuple[float, float]:
        calls.append((side, i))
        return float(len(calls)), -float(len(calls))

    speeds, rss = common.in_turns(["a", "b", "c"], 3, measure)
    assert calls == [("a", 0), ("b", 0), ("c", 0), ("b", 1), ("c", 1), ("a", 1), ("c", 2), ("a", 2), ("b", 2)]
    assert speeds == {"a": [1.0, 6.0, 8.0], "b": [2.0, 4.0, 9.0], "c": [3.0, 5.0, 7.0]}
    assert rss["a"] == [-1.0, -6.0, -8.0]
    assert common.in_turns(["a"], 0, lambda side, i: (1.0, 0.0)) == ({"a": [1.0]}, {"a": [0.0]})  # at least once


def test_rss_sampler_sees_what_the_child_allocates() -> None:
    child = run_child(python_child("tests.bench.test_bench_common:allocate_and_hold", size=ALLOCATE_BYTES, hold_s=0.5))
    assert child.result["allocated"] == ALLOCATE_BYTES
    assert child.baseline_rss is not None and child.baseline_rss > 0
    # The transfer's own memory is peak − baseline: the block, plus a little interpreter noise.
    assert 0.9 * ALLOCATE_BYTES <= child.rss_over_baseline <= ALLOCATE_BYTES + 50 * common.MB
    assert child.seconds > 0


def burn_cpu(cpu_s: float) -> dict:
    """Child target: after the start marker, spin until this process has used ``cpu_s`` of CPU."""
    children.mark_start()
    start = time.process_time()
    while time.process_time() - start < cpu_s:
        sum(range(10_000))
    return {"own_cpu_s": time.process_time() - start}


def test_machine_cpu_covers_the_childs_own_work() -> None:
    child = run_child(python_child("tests.bench.test_bench_common:burn_cpu", cpu_s=0.3))
    own = child.result["own_cpu_s"]
    # The machine's busy time over the work holds at least the child's own (10 ms ticks apart).
    assert own >= 0.3
    assert child.machine_cpu_s >= own - 0.05
    assert child.machine_cpu_s == child.result["machine_cpu_s"]  # the child's span: not its exit
    plain = run_child(
        [sys.executable, "-c", "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"]
    )
    assert plain.machine_cpu_s >= 0.25  # a plain tool: spawn to exit


def test_tree_cpu_keeps_the_children_a_process_reaped() -> None:
    import subprocess

    import psutil

    # A shell whose child burns 0.5 s of CPU and ends; the shell reaps it and waits for input.
    spin = "import time; t = time.process_time(); all(iter(lambda: time.process_time() - t < 0.5, False))"
    shell = subprocess.Popen(
        ["sh", "-c", f'"{sys.executable}" -c "{spin}"; read line'], stdin=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while not psutil.Process(shell.pid).children() and time.monotonic() < deadline:
            time.sleep(0.01)  # the child starts
        while psutil.Process(shell.pid).children() and time.monotonic() < deadline:
            time.sleep(0.05)  # … and ends
        assert children.tree_cpu_s(shell.pid) >= 0.45  # only the shell is left: its children's time
    finally:
        shell.communicate("\n", timeout=30)
    assert children.tree_cpu_s(shell.pid) == 0.0  # gone: nothing to count


def test_sampler_counts_the_whole_process_tree() -> None:
    # A shell whose child python holds the block: the shell itself allocates nothing.
    script = f"import time; b = b'x' * {ALLOCATE_BYTES}; time.sleep(0.5)"
    child = run_child(["sh", "-c", f'"{sys.executable}" -c "{script}"; true'])
    assert child.baseline_rss is None  # no start marker from a plain tool
    assert child.peak_rss >= 0.9 * ALLOCATE_BYTES


def test_failing_child_raises_with_its_stderr() -> None:
    with pytest.raises(ChildFailed, match="boom"):
        run_child([sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"])


def _rows() -> list[Row]:
    return [
        Row(
            "sftp",
            "1 GB vs OpenSSH",
            "MB/s",
            180.0,
            peer=200.0,
            peer_name="sftp -b",
            target=">= 0.9x",
            passed=True,
            peak_rss_mb=40.0,
            rss_limit_mb=64.0,
            runs=3,
        ),
        Row("fanout", "100 tables", "s", 2.5, higher_is_better=False, target="<= 2 s", passed=False, runs=3),
        Row("e2e", "10 tables", "s", 30.0, peer=60.0, peer_name="serial", higher_is_better=False),
        common.error_row("box", RuntimeError("local Box API did not start")),
    ]


def test_ratio_is_how_many_times_better_offsite_is() -> None:
    sftp, fanout, e2e, box = _rows()
    assert sftp.ratio == pytest.approx(0.9)
    assert e2e.ratio == pytest.approx(2.0)  # lower is better: peer / offsite
    assert fanout.ratio is None and box.ratio is None
    assert [r.status for r in _rows()] == ["pass", "MISS", "-", "ERROR"]


def test_table_has_one_line_per_row_and_names_errors() -> None:
    text = format_table(_rows())
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["scenario", "case", "offsite"]
    assert any(line.startswith("sftp") and "0.90x" in line and "+40 MB (<= 64)" in line for line in lines)
    assert any("MISS" in line and line.startswith("fanout") for line in lines)
    assert "box: RuntimeError: local Box API did not start" in text


def test_markdown_table_is_a_valid_pipe_table() -> None:
    lines = format_table(_rows(), markdown=True).splitlines()
    assert lines[1].startswith("| --- |")
    columns = lines[0].count("|")
    assert all(line.count("|") == columns for line in lines[:6])


def test_json_round_trip_keeps_every_figure(tmp_path) -> None:
    path = tmp_path / "results" / "latest.json"
    write_json(_rows(), path, quick=True, machine={"cores": 2})
    meta, rows = read_json(path)
    assert meta == {"quick": True, "machine": {"cores": 2}}
    assert [r.to_dict() for r in rows] == [r.to_dict() for r in _rows()]
    assert json.loads(path.read_text())["rows"][0]["ratio"] == pytest.approx(0.9)


def test_rows_from_other_scenarios_keep_unknown_keys() -> None:
    row = Row.from_dict({"scenario": "box", "case": "1 GB", "unit": "MB/s", "offsite": 90.0, "part_size": 8388608})
    assert row.samples["part_size"] == 8388608
    assert row.status == "-"


def test_target_checks_ignore_missing_targets() -> None:
    assert common.all_of(True, None) is True
    assert common.all_of(True, False) is False
    assert common.all_of(None, None) is None
    assert common.within_rss(60.0, 64.0) is True
    assert common.within_rss(65.0, 64.0) is False
    assert common.within_rss(None, 64.0) is None


def test_epoch_reads_gcs_and_pubsub_timestamps() -> None:
    import datetime as dt

    assert stack_watch.epoch("1970-01-01T00:00:01.500000Z") == pytest.approx(1.5)
    assert stack_watch.epoch("1970-01-01T00:00:02Z") == pytest.approx(2.0)
    assert stack_watch.epoch(dt.datetime(1970, 1, 1, 0, 0, 3, tzinfo=dt.UTC)) == pytest.approx(3.0)


def _settled_tree(root: Any, size: int) -> list[Any]:
    """``root`` and its ``size`` descendants once every one has called exec (a child between fork
    and exec shows its parent's pages, which tree_rss leaves out by design) and their RSS has
    stopped growing (the interpreters have started): the two sides then measure the same thing."""
    deadline, last = time.monotonic() + 30, -1
    while time.monotonic() < deadline:
        found = root.children(recursive=True)
        if len(found) == size and not any(children._not_yet_exec(p) for p in found):
            total = sum(p.memory_info().rss for p in [root, *found])
            if total == last:
                return [root, *found]
            last = total
        time.sleep(0.1)
    raise AssertionError(f"the process tree of {root.pid} did not settle within 30 s")


def test_tree_rss_counts_children_and_grandchildren_and_children_of_other_threads() -> None:
    import subprocess

    import psutil

    # A Python parent that starts one child from its main thread and one from another thread;
    # the first child starts a grandchild. The kernel lists each thread's children apart.
    sleep = "import time; time.sleep(60)"
    with_grandchild = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {sleep!r}])"
    script = "\n".join(
        [
            "import subprocess, sys, threading, time",
            f"a = subprocess.Popen([sys.executable, '-c', {with_grandchild!r}])",
            f"t = threading.Thread(target=lambda: subprocess.run([sys.executable, '-c', {sleep!r}]))",
            "t.start(); time.sleep(60)",
        ]
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        root = psutil.Process(parent.pid)
        settled = _settled_tree(root, size=3)
        expected = {p.pid for p in settled[1:]}
        assert {p.pid for p in children._descendants(root)} == expected
        assert children.tree_rss(parent.pid) == pytest.approx(sum(p.memory_info().rss for p in settled), rel=0.05)
    finally:
        procs.kill_tree(psutil.Process(parent.pid))
        parent.wait(timeout=30)
    assert children.tree_rss(parent.pid) == 0


def test_tree_rss_leaves_out_a_child_that_has_not_called_exec_yet() -> None:
    """A forked child before its exec (subprocess starting ``ssh``) shows the parent's pages as
    its own RSS: counted, the sample held the parent twice (the SFTP bench's +77 MB peaks)."""
    import subprocess

    import psutil

    script = "import os, time\nheld = bytearray(os.urandom(64_000_000))\nos.fork()\ntime.sleep(60)"
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        root = psutil.Process(parent.pid)
        deadline = time.monotonic() + 30
        while not root.children() and time.monotonic() < deadline:
            time.sleep(0.05)
        (forked,) = root.children()
        assert forked.memory_info().rss > 60_000_000  # the parent's pages, shown as the child's own
        assert children.tree_rss(parent.pid) == pytest.approx(root.memory_info().rss, rel=0.05)
    finally:
        procs.kill_tree(psutil.Process(parent.pid))
        parent.wait(timeout=30)
