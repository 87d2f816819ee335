"""Box's per-user rate limits across many instances: 5,000 files, paced vs unpaced.

Box limits a user to about 1,000 API calls and 240 uploads a minute, shared by every function
instance. Here the local Box API enforces the same kind of limits (devstack/boxapi/ratelimit.py,
sliding 60 s windows per user): Box's own figures for ``--quick`` (500 files), twice them for
the full run (5,000 files: 2,000 calls and 480 uploads a minute, about 11 minutes a side), so
that the upload limit binds on a 2-core machine and the run still fits in a bench. ``INSTANCES`` child processes — the function instances — each
deliver their share of the files through ``BoxDestination.put`` (what upload_box runs per
file), all at once, as one user:

- paced: ``calls_per_minute``/``uploads_per_minute`` set to the server's limits and
  ``paced_instances`` to the number of processes (shared/destinations/box/pacing.py);
- unpaced: the same without the limits in config (only ``Retry-After`` on each 429).

Reported: files per second for the whole run, and the share of API calls answered 429 (from
the server's request log). Target: paced < 1 % of calls answered 429, every file delivered.

    .venv/bin/python -m bench.box_ratelimit_bench [--quick] [--runs N]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.children import REPO_ROOT, mark_start, python_child, run_child
from bench.common import MIN_RUNS, Row, all_of, median, scenario_main

FILES_FULL = 5_000
FILES_QUICK = 500
INSTANCES = 10
BOX_CALLS_PER_MINUTE = 1_000
BOX_UPLOADS_PER_MINUTE = 240
FILE_BYTES = 1_000
TARGET_429_SHARE = 0.01


def deliver_files(
    box_url: str, token: str, folder: str, first: int, count: int, limits: dict[str, int] | None
) -> dict[str, Any]:
    """Child (one 'instance'): ``count`` small files into ``folder`` with offsite's BoxDestination."""
    import io

    from bench.box_bench import local_box

    box = local_box(box_url, token, folder, **(limits or {}))
    mark_start()
    started = time.perf_counter()
    for i in range(first, first + count):
        data = i.to_bytes(8, "big") * (FILE_BYTES // 8)
        box.put(f"{folder}/f{i:05d}.bin", io.BytesIO(data), len(data))
    return {"seconds": time.perf_counter() - started, "files": count}


def _run_once(box: Any, files: int, scale: int, paced: bool) -> tuple[float, float, int]:
    """All instances at once; (files/s, share of calls answered 429, calls)."""
    box.admin("POST", "/reset", {"data": True})
    limits = {"calls_per_minute": BOX_CALLS_PER_MINUTE * scale, "uploads_per_minute": BOX_UPLOADS_PER_MINUTE * scale}
    box.configure(**limits)
    folder = f"ratelimit-{'paced' if paced else 'unpaced'}"
    per = files // INSTANCES
    errors: list[BaseException] = []

    def instance(n: int) -> None:
        argv = python_child(
            "box_ratelimit_bench:deliver_files",
            box_url=box.base_url,
            token=box.token,
            folder=folder,
            first=n * per,
            count=per,
            limits=limits | {"paced_instances": INSTANCES} if paced else None,
        )
        try:
            run_child(argv, cwd=REPO_ROOT, interval_s=0.5)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    started = time.perf_counter()
    threads = [threading.Thread(target=instance, args=(n,)) for n in range(INSTANCES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} instance(s) failed: {errors[0]}")
    log = box.requests()
    calls = sum(log["counts"].values())
    refused = int(log["rate_limited"])  # the log keeps the last 20,000 entries; this counter all
    return per * INSTANCES / seconds, refused / max(1, calls), calls


def run(quick: bool, runs: int = MIN_RUNS) -> list[dict[str, Any]]:
    from devstack.boxapi import BoxApiServer

    files, scale = (FILES_QUICK, 1) if quick else (FILES_FULL, 2)
    data_dir = Path(tempfile.mkdtemp(prefix="offsite-box-ratelimit-"))
    samples: dict[str, list[float]] = {"paced_fps": [], "paced_429": [], "unpaced_fps": [], "unpaced_429": []}
    calls: list[int] = []
    try:
        with BoxApiServer(data_dir / "box") as box:
            for _ in range(max(1, runs if quick else 1)):  # a full run is minutes per side: once
                fps, share, n = _run_once(box, files, scale, paced=True)
                samples["paced_fps"].append(fps)
                samples["paced_429"].append(share)
                calls.append(n)
                fps, share, _ = _run_once(box, files, scale, paced=False)
                samples["unpaced_fps"].append(fps)
                samples["unpaced_429"].append(share)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    paced_429 = max(samples["paced_429"])
    row = Row(
        scenario="box-ratelimit",
        case=f"{files:,} files from {INSTANCES} instances, limits {BOX_CALLS_PER_MINUTE * scale:,} calls / "
        f"{BOX_UPLOADS_PER_MINUTE * scale:,} uploads a minute",
        unit="files/s",
        offsite=median(samples["paced_fps"]),
        peer=median(samples["unpaced_fps"]),
        peer_name="the same without pacing (Retry-After only)",
        target=f"paced: < {TARGET_429_SHARE:.0%} of calls answered 429",
        runs=len(samples["paced_fps"]),
        notes=(
            f"429 share paced {paced_429:.2%}, unpaced {max(samples['unpaced_429']):.2%}; "
            f"{median(calls):,.0f} calls per paced run"
        ),
        samples=samples,
    )
    row.passed = all_of(paced_429 < TARGET_429_SHARE)
    return [row.to_dict()]


def main(argv: list[str] | None = None) -> int:
    return scenario_main(run, __doc__, FILES_QUICK, FILES_FULL, argv)


if __name__ == "__main__":
    sys.exit(main())
