"""What every benchmark scenario shares: repeated runs, peak RSS of a child process tree, result rows, output.

A scenario module exposes ``run(quick: bool, ...) -> list[dict]``; each dict is a :class:`Row`
(``Row.to_dict()``), so ``bench/run.py`` can print, chart and store rows from every scenario the
same way. Figures are medians of at least :data:`MIN_RUNS` runs.

Peak RSS and the clock come from a child process (:mod:`bench.children`).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import statistics
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Self, TypeVar

MIN_RUNS = 3
MB = 1_000_000  # throughput and memory figures are decimal megabytes
BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent

T = TypeVar("T")


# ---- repeated runs -------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    """The median of the runs; ValueError on no runs (a scenario that measured nothing must say so)."""
    if not values:
        raise ValueError("median of no runs: the scenario produced no measurements")
    return float(statistics.median(values))


def repeat(measure: Callable[[], T], runs: int = MIN_RUNS) -> list[T]:
    """Call ``measure`` ``runs`` times (at least once), in order, and return every result."""
    return [measure() for _ in range(max(1, runs))]


def in_turns(
    sides: Sequence[str], runs: int, measure: Callable[[str, int], tuple[float, float]]
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """``measure(side, i)`` -> (MB/s, MB of RSS) of every side ``runs`` times (at least once), in
    turns: round ``i`` starts at side ``i`` so that no side always goes first. The speeds and the
    RSS of each side, in the order measured."""
    speeds: dict[str, list[float]] = {side: [] for side in sides}
    rss: dict[str, list[float]] = {side: [] for side in sides}
    order = list(sides)
    for i in range(max(1, runs)):
        for side in order[i % len(order) :] + order[: i % len(order)]:
            speed, memory = measure(side, i)
            speeds[side].append(speed)
            rss[side].append(memory)
    return speeds, rss


def throughput_mb_s(size_bytes: int, seconds: float) -> float:
    return size_bytes / MB / seconds if seconds > 0 else float("inf")


# ---- result rows -----------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the results table: an offsite figure against a peer's, on the same machine.

    ``ratio`` is always "how many times better offsite is": offsite/peer for throughput,
    peer/offsite when lower is better (seconds). ``passed`` is None when there is no target.
    """

    scenario: str  # "sftp", "box", "export", "fanout", "e2e"
    case: str  # what was measured, short
    unit: str  # "MB/s", "rows/s", "s"
    offsite: float | None
    peer: float | None = None
    peer_name: str | None = None
    higher_is_better: bool = True
    target: str = ""  # in words, e.g. ">= 0.9x OpenSSH, RSS <= baseline + 64 MB"
    passed: bool | None = None
    peak_rss_mb: float | None = None  # peak − baseline of offsite's process tree
    rss_limit_mb: float | None = None
    runs: int = 0
    notes: str = ""
    error: str | None = None
    samples: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if not self.offsite or not self.peer:
            return None
        return self.offsite / self.peer if self.higher_is_better else self.peer / self.offsite

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ratio"] = self.ratio
        return out

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Row:
        """Tolerant: unknown keys land in ``samples`` so no scenario's extra figure is lost."""
        names = {f.name for f in fields(cls)}
        known = {k: v for k, v in obj.items() if k in names}
        extra = {k: v for k, v in obj.items() if k not in names and k != "ratio"}
        known.setdefault("scenario", "?")
        known.setdefault("case", "")
        known.setdefault("unit", "")
        known.setdefault("offsite", None)
        row = cls(**known)
        row.samples = {**row.samples, **extra}
        return row

    @property
    def status(self) -> str:
        if self.error:
            return "ERROR"
        if self.passed is None:
            return "-"
        return "pass" if self.passed else "MISS"


def error_row(scenario: str, exc: BaseException) -> Row:
    return Row(scenario=scenario, case="(failed to run)", unit="", offsite=None, error=f"{type(exc).__name__}: {exc}")


def within_rss(peak_rss_mb: float | None, limit_mb: float | None) -> bool | None:
    if peak_rss_mb is None or limit_mb is None:
        return None
    return peak_rss_mb <= limit_mb


def all_of(*checks: bool | None) -> bool | None:
    """Combine target checks: None (no target) is ignored; all None → None."""
    real = [c for c in checks if c is not None]
    return all(real) if real else None


# ---- output ------------------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 10_000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


COLUMNS = ("scenario", "case", "offsite", "peer", "ratio", "peak RSS", "target", "result")


def table_cells(row: Row) -> list[str]:
    peer = "-" if row.peer is None else f"{_fmt(row.peer)} {row.unit} ({row.peer_name or 'peer'})"
    ratio = "-" if row.ratio is None else f"{row.ratio:.2f}x"
    rss = "-" if row.peak_rss_mb is None else f"+{row.peak_rss_mb:.0f} MB"
    if row.rss_limit_mb is not None and row.peak_rss_mb is not None:
        rss += f" (<= {row.rss_limit_mb:.0f})"
    offsite = "-" if row.offsite is None else f"{_fmt(row.offsite)} {row.unit}"
    return [row.scenario, row.case, offsite, peer, ratio, rss, row.target or "-", row.status]


def format_table(rows: Sequence[Row], markdown: bool = False) -> str:
    """The results as a plain-text (or Markdown) table, one line per row, errors listed below it."""
    cells = [list(COLUMNS), *(table_cells(r) for r in rows)]
    if markdown:
        lines = ["| " + " | ".join(c) + " |" for c in cells]
        lines.insert(1, "|" + "|".join(" --- " for _ in COLUMNS) + "|")
    else:
        widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
        lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(COLUMNS))).rstrip() for c in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
    for row in rows:
        if row.error:
            lines.append(f"{row.scenario}: {row.error.splitlines()[0] if row.error else ''}")
        elif row.notes and not markdown:
            lines.append(f"  {row.scenario}/{row.case}: {row.notes}")
    return "\n".join(lines)


def write_json(rows: Sequence[Row], path: Path, **meta: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {**meta, "rows": [r.to_dict() for r in rows]}
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> tuple[dict[str, Any], list[Row]]:
    doc = json.loads(path.read_text())
    return {k: v for k, v in doc.items() if k != "rows"}, [Row.from_dict(r) for r in doc.get("rows", [])]


# ---- a scenario's own buckets, a private GCS emulator and a scenario's command line ------------


def own_buckets(bucket: str) -> dict[str, str]:
    """The config fields that send an export's files to ``bucket`` (one without notifications:
    nothing wakes up) and its records (kept schemas, failure claims) to ``<bucket>-state``."""
    return {"bucket": bucket, "state_bucket": f"{bucket}-state"}


def create_buckets(storage: Any, bucket: str) -> None:
    """Create ``bucket`` and its state bucket (:func:`own_buckets`) where they do not exist yet."""
    for name in own_buckets(bucket).values():
        if storage.lookup_bucket(name) is None:
            storage.create_bucket(name)


def use_gcs_emulator(gcs_url: str) -> None:
    """In a child: google-cloud-storage (and offsite's gcs module) talk to the emulator at ``gcs_url``."""
    os.environ["STORAGE_EMULATOR_HOST"] = gcs_url
    os.environ.setdefault("GOOGLE_CLOUD_PROJECT", "offsite-bench")


class FakeGcs:
    """fake-gcs-server on a free port, its objects and log under ``root``; ``stop`` ends it (by pid)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        from devstack.binaries import fake_gcs_server
        from devstack.ports import free_port, wait_http_ok

        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        argv = [str(fake_gcs_server()), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port)]
        argv += ["-external-url", self.url, "-backend", "filesystem", "-filesystem-root", str(self.root / "gcs")]
        with open(self.root / "gcs.log", "ab") as log:
            proc = self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        wait_http_ok(f"{self.url}/_internal/healthcheck", 30, is_alive=lambda: proc.poll() is None)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def seed(self, bucket: str, name: str, size: int, copy_to: Path | None = None) -> str:
        """Create ``bucket`` and write ``size`` random bytes to ``name`` in it (streamed, never whole
        in memory), the same bytes to ``copy_to`` when given; returns their SHA-1."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        client = storage.Client(
            project="offsite-bench", credentials=AnonymousCredentials(), client_options={"api_endpoint": self.url}
        )
        digest = hashlib.sha1()
        block = os.urandom(8 * 1024 * 1024)  # random once; varied per block by a counter prefix
        with contextlib.ExitStack() as stack:
            out = stack.enter_context(client.create_bucket(bucket).blob(name, chunk_size=32 * 1024 * 1024).open("wb"))
            local = stack.enter_context(copy_to.open("wb")) if copy_to is not None else None
            left, counter = size, 0
            while left:
                chunk = (counter.to_bytes(8, "big") + block)[: min(len(block), left)]
                digest.update(chunk)
                out.write(chunk)
                if local is not None:
                    local.write(chunk)
                left -= len(chunk)
                counter += 1
        return digest.hexdigest()


def scenario_main(
    run: Callable[[bool, int], list[dict[str, Any]]],
    doc: str | None,
    quick_bytes: int,
    full_bytes: int,
    argv: list[str] | None = None,
    unit: str = "bytes",
) -> int:
    """A scenario run on its own: ``[--quick] [--runs N]``, its rows printed as a table; 1 when a row failed."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    sizes = f"{quick_bytes / 1e6:g} MB instead of {full_bytes / 1e9:g} GB"
    parser.add_argument(
        "--quick",
        action="store_true",
        help=sizes if unit == "bytes" else f"{quick_bytes:,} {unit} instead of {full_bytes:,}",
    )
    parser.add_argument("--runs", type=int, default=MIN_RUNS, help="runs per side (the median is reported)")
    args = parser.parse_args(argv)
    rows = [Row.from_dict(r) for r in run(args.quick, args.runs)]
    print(format_table(rows))
    return 0 if all(r.passed is not False for r in rows) else 1
