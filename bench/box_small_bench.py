"""Many small files to Box under the WAN model: 1,000 files ≤ 1 MB, offsite vs box-sdk-gen one by one.

Both sides deliver the same files (same names, same bytes, sizes spread log-uniformly from
1 kB to 1 MB, :func:`file_sizes`) into the same run-folder tree of 10 table folders
(``GCP/bench_small/tNN/YYYYMMDD/RUN/``, as a nightly run lays them out) of the local Box API
server, reached through ``devstack.wan.WanProxy`` with the ``box-from-gcp`` profile. For every
file each side creates the folders it still needs, asks Box's preflight check, then uploads the
file in one multipart request:

- offsite: ``BoxDestination.put`` — what upload_box runs per file: folder ids created first and
  cached per process, preflight, one multipart upload with the content SHA-1. Its best settings:
  ``THREADS`` files at once in one process, each thread with its own destination (one upload_box
  instance runs ``concurrency: 8`` requests at once; see shared/topology.py).
- peer: box-sdk-gen doing the same one by one, as a script would: ``folders.create_folder`` for
  each folder not yet made (ids kept in a dict), ``uploads.preflight_file_upload_check``, then
  ``uploads.upload_file``. Its best settings: one client, so one connection pool, reused for
  every call (the SDK's default network session).

Files/s = files / seconds from the child's start marker (clients built, data in memory) to the
last upload; each side in its own child process; the two sides alternate. ``--quick``: 100 files.

    .venv/bin/python -m bench.box_small_bench [--quick] [--runs N]
"""

from __future__ import annotations

import io
import math
import random
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.children import REPO_ROOT, mark_start, python_child, run_child
from bench.common import MIN_RUNS, Row, median, scenario_main

FILES_FULL = 1_000
FILES_QUICK = 100
TABLES = 10
MIN_BYTES = 1_000
MAX_BYTES = 1_000_000
THREADS = 8  # upload_box's concurrency per instance
PEER = "box-sdk-gen, one by one"
SEED = 18


def file_sizes(count: int, seed: int = SEED) -> list[int]:
    """``count`` sizes between MIN_BYTES and MAX_BYTES, log-uniform (as many 1–10 kB files as
    100 kB–1 MB ones), the same for a given seed."""
    rng = random.Random(seed)
    low, high = math.log(MIN_BYTES), math.log(MAX_BYTES)
    return [int(math.exp(rng.uniform(low, high))) for _ in range(count)]


def file_paths(top: str, count: int, run_id: str = "r1") -> list[str]:
    """Where file ``i`` goes: spread over ``TABLES`` run folders under ``top``."""
    return [f"{top}/GCP/bench_small/t{i % TABLES:02d}/20261130/{run_id}/part-{i:05d}.bin" for i in range(count)]


def file_data(index: int, size: int, block: bytes) -> bytes:
    """File ``index``'s bytes: its index, then the shared random block (unique per file)."""
    return (index.to_bytes(8, "big") + block)[:size]


def _files(top: str, count: int) -> Iterator[tuple[str, bytes]]:
    block = random.Random(SEED).randbytes(MAX_BYTES)
    for i, (path, size) in enumerate(zip(file_paths(top, count), file_sizes(count), strict=True)):
        yield path, file_data(i, size, block)


# ---- children (run in their own interpreter by bench.children.run_child) -----------------------


def offsite_small(box_url: str, token: str, top: str, count: int) -> dict[str, Any]:
    """Child: every file through ``BoxDestination.put``, ``THREADS`` at once."""
    import threading

    from bench.box_bench import local_box

    files = list(_files(top, count))
    local = threading.local()

    def put(item: tuple[str, bytes]) -> str:
        if not hasattr(local, "box"):
            local.box = local_box(box_url, token, "")
        path, data = item
        return str(local.box.put(path, io.BytesIO(data), len(data)).sha1)

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda i: None, range(THREADS)))  # threads up before the clock starts
        mark_start()
        started = time.perf_counter()
        digests = list(pool.map(put, files))
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "files": len(digests), "bytes": sum(len(d) for _, d in files)}


def sdk_small(box_url: str, token: str, top: str, count: int) -> dict[str, Any]:
    """Child: every file with box-sdk-gen, one after the other (folders, preflight, upload)."""
    from box_sdk_gen import BoxClient, BoxDeveloperTokenAuth
    from box_sdk_gen.managers.folders import CreateFolderParent
    from box_sdk_gen.managers.uploads import (
        PreflightFileUploadCheckParent,
        UploadFileAttributes,
        UploadFileAttributesParentField,
    )
    from box_sdk_gen.networking.base_urls import BaseUrls

    urls = BaseUrls(base_url=box_url, upload_url=box_url + "/api", oauth_2_url=box_url + "/oauth2")
    client = BoxClient(auth=BoxDeveloperTokenAuth(token=token)).with_custom_base_urls(urls)
    files = list(_files(top, count))
    folder_ids: dict[str, str] = {"": "0"}

    def folder(path: str) -> str:
        if path not in folder_ids:
            parent, _, name = path.rpartition("/")
            folder_ids[path] = client.folders.create_folder(name, CreateFolderParent(id=folder(parent))).id
        return folder_ids[path]

    mark_start()
    started = time.perf_counter()
    for path, data in files:
        parent, _, name = path.rpartition("/")
        folder_id = folder(parent)
        client.uploads.preflight_file_upload_check(
            name=name, size=len(data), parent=PreflightFileUploadCheckParent(id=folder_id)
        )
        client.uploads.upload_file(
            UploadFileAttributes(name, UploadFileAttributesParentField(folder_id)), io.BytesIO(data)
        )
    return {"seconds": time.perf_counter() - started, "files": len(files)}


# ---- the scenario ------------------------------------------------------------------------------


def run(quick: bool, runs: int = MIN_RUNS) -> list[dict[str, Any]]:
    """Both sides ``runs`` times through the WAN model; one row (files/s)."""
    import shutil
    import tempfile

    from devstack.boxapi import BoxApiServer
    from devstack.wan import BOX_FROM_GCP, WanProxy

    count = FILES_QUICK if quick else FILES_FULL
    data_dir = Path(tempfile.mkdtemp(prefix="offsite-box-small-"))
    samples: dict[str, list[float]] = {"offsite_fps": [], "sdk_fps": []}
    try:
        with BoxApiServer(data_dir / "box") as box, WanProxy(box.port, BOX_FROM_GCP) as wan:
            for _ in range(max(1, runs)):
                for side, target in (("sdk", "sdk_small"), ("offsite", "offsite_small")):
                    top = f"small-{side}-{uuid.uuid4().hex[:8]}"
                    argv = python_child(
                        f"box_small_bench:{target}", box_url=wan.url, token=box.token, top=top, count=count
                    )
                    child = run_child(argv, cwd=REPO_ROOT, interval_s=0.5)
                    samples[f"{side}_fps"].append(count / child.seconds)
                    box.admin("POST", "/reset", {"data": True})
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    sizes = file_sizes(count)
    row = Row(
        scenario="box-small",
        case=f"{count:,} files of 1 kB–1 MB ({sum(sizes) / 1e6:.0f} MB) → Box, {BOX_FROM_GCP.describe()}",
        unit="files/s",
        offsite=median(samples["offsite_fps"]),
        peer=median(samples["sdk_fps"]),
        peer_name=PEER,
        target="none (reported)",
        runs=len(samples["offsite_fps"]),
        notes=f"offsite {THREADS} files at once in one process; the SDK one by one; {TABLES} run folders",
        samples=samples,
    )
    return [row.to_dict()]


def main(argv: list[str] | None = None) -> int:
    return scenario_main(run, __doc__, FILES_QUICK, FILES_FULL, argv, unit="files")


if __name__ == "__main__":
    sys.exit(main())
