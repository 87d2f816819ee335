"""Box chunked upload: 1 GB from the GCS emulator to the local Box API, offsite vs box-sdk-gen.

Both sides read the same object through the same stream (``shared.gcp.reader.ObjectReader``,
what upload_box reads) and
upload it into a fresh folder of the same local Box API server (devstack.boxapi), each in its
own child process so its RSS is its own:

- offsite: ``BoxDestination.put`` — upload session, ``parallel_parts`` parts in flight, per-part
  SHA-1 digests, commit with the whole-file digest (what upload_box does for a large file);
- peer: box-sdk-gen's ``chunked_uploads.upload_big_file`` (sequential parts), the SDK's own
  helper for the same job.

Each pair runs twice in the same run: on loopback (where a round trip costs nothing, so parallel
parts show little) and through ``devstack.wan.WanProxy`` with the ``box-from-gcp`` profile (a
round-trip time and a per-connection bandwidth cap like Box's API seen from Google Cloud;
docs/performance.md gives the figures and their sources), which is where Box really is.

Throughput = bytes / seconds from the child's start marker (clients built, stream open) to the
committed file. Memory = peak RSS of the child − its RSS at the start marker. Target: offsite
≥ 3× the SDK's throughput, with peak RSS ≤ baseline + 4 × part_size + 64 MB. Figures are
medians of ``runs`` runs; the two sides alternate so drift hits both.

    .venv/bin/python -m bench.box_bench [--quick] [--runs N]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Self

from bench.children import REPO_ROOT, mark_start, python_child, run_child
from bench.common import MB, MIN_RUNS, FakeGcs, Row, all_of, median, scenario_main, use_gcs_emulator, within_rss
from devstack.wan import BOX_FROM_GCP, WanProxy

SIZE_FULL = 1_000_000_000
SIZE_QUICK = 200_000_000
TARGET_RATIO = 3.0
RSS_SLACK_BYTES = 64 * MB
PARALLEL_PARTS = 4
PEER = "box-sdk-gen upload_big_file"
OBJECT = "bench/box/blob.bin"
BUCKET = "offsite-box-bench"


# ---- children (run in their own interpreter by bench.children.run_child) -----------------------


def _stream() -> Any:
    """The stream the delivery operation reads (one streaming GET, prefetching); both sides get the same one."""
    from shared.delivery.operation import PREFETCH_BLOCKS
    from shared.gcp import gcs
    from shared.gcp.reader import ObjectReader

    info = gcs.stat(BUCKET, OBJECT, missing_ok=False)
    assert info is not None
    return ObjectReader(info, prefetch=PREFETCH_BLOCKS)


def local_box(box_url: str, token: str, folder: str, **settings: Any) -> Any:
    """offsite's BoxDestination on the local Box API as the developer user, ``folder`` created."""
    from shared.config import BoxAuth, BoxDestination
    from shared.destinations.box.destination import BoxDestination as Box
    from shared.secrets import Secret

    box = Box(
        BoxDestination(
            root_folder_id="0",
            auth=BoxAuth(method="developer_token", developer_token=Secret(token)),
            base_url=box_url,
            upload_url=box_url + "/api",
            oauth_url=box_url + "/oauth2",
            **settings,
        )
    )
    box.mkdirs(folder)
    return box


def offsite_upload(gcs_url: str, box_url: str, token: str, folder: str, size: int) -> dict[str, Any]:
    """Child: stream the object into Box with offsite's BoxDestination."""
    use_gcs_emulator(gcs_url)
    box = local_box(box_url, token, folder, parallel_parts=PARALLEL_PARTS)
    with _stream() as stream:
        mark_start()
        started = time.perf_counter()
        result = box.put(f"{folder}/blob.bin", stream, size)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "sha1": result.sha1, "file_id": result.remote_id}


def sdk_upload(gcs_url: str, box_url: str, token: str, folder: str, size: int) -> dict[str, Any]:
    """Child: stream the object into Box with box-sdk-gen's own chunked-upload helper."""
    use_gcs_emulator(gcs_url)
    from box_sdk_gen import BoxClient, BoxDeveloperTokenAuth
    from box_sdk_gen.managers.folders import CreateFolderParent
    from box_sdk_gen.networking.base_urls import BaseUrls

    urls = BaseUrls(base_url=box_url, upload_url=box_url + "/api", oauth_2_url=box_url + "/oauth2")
    client = BoxClient(auth=BoxDeveloperTokenAuth(token=token)).with_custom_base_urls(urls)
    folder_id = client.folders.create_folder(folder, CreateFolderParent(id="0")).id
    with _stream() as stream:
        mark_start()
        started = time.perf_counter()
        uploaded = client.chunked_uploads.upload_big_file(stream, "blob.bin", size, folder_id)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "sha1": uploaded.sha_1, "file_id": uploaded.id}


# ---- the scenario ------------------------------------------------------------------------------


class _Servers:
    """fake-gcs-server and the local Box API in a temp dir, stopped (by pid) and removed at the end."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="offsite-box-bench-"))
        self.gcs = FakeGcs(self.dir)
        self.box: Any = None

    def __enter__(self) -> Self:
        from devstack.boxapi import BoxApiServer

        self.gcs_url = self.gcs.start().url
        self.box = BoxApiServer(self.dir / "box").start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.box is not None:
            self.box.stop()
        self.gcs.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _measure(
    servers: _Servers, target: str, size: int, expected_sha1: str, box_url: str
) -> tuple[float, float, dict[str, Any]]:
    folder = f"bench-{target.split(':')[1]}-{uuid.uuid4().hex[:8]}"
    argv = python_child(
        target, gcs_url=servers.gcs_url, box_url=box_url, token=servers.box.token, folder=folder, size=size
    )
    child = run_child(argv, cwd=REPO_ROOT)
    if child.result.get("sha1") != expected_sha1:
        raise RuntimeError(f"{target}: Box stored SHA-1 {child.result.get('sha1')}, the object's is {expected_sha1}")
    servers.box.admin("POST", "/reset", {"data": True})  # drop the uploaded GB before the next run
    return size / MB / child.seconds, child.rss_over_baseline / MB, child.result


def run(quick: bool, runs: int = MIN_RUNS) -> list[dict[str, Any]]:
    """Measure both sides ``runs`` times on loopback and through the WAN model; two rows."""
    size = SIZE_QUICK if quick else SIZE_FULL
    with _Servers() as servers:
        expected = servers.gcs.seed(BUCKET, OBJECT, size)
        # The 3x target is about Box across the internet (the WAN model); on loopback the ratio is reported.
        rows = [_compare(servers, size, expected, runs, servers.box.base_url, "loopback", ratio_target=None)]
        with WanProxy(servers.box.port, BOX_FROM_GCP) as wan:
            rows.append(_compare(servers, size, expected, runs, wan.url, BOX_FROM_GCP.describe()))
    return rows


def _compare(
    servers: _Servers,
    size: int,
    expected: str,
    runs: int,
    box_url: str,
    network: str,
    ratio_target: float | None = TARGET_RATIO,
) -> dict[str, Any]:
    """One row: offsite vs the SDK through ``box_url``, the sides taking turns; without
    ``ratio_target`` only the memory limit is a target and the ratio is reported."""
    offsite_mb_s: list[float] = []
    sdk_mb_s: list[float] = []
    offsite_rss: list[float] = []
    sdk_rss: list[float] = []
    for _ in range(max(1, runs)):
        speed, rss, _ = _measure(servers, "box_bench:sdk_upload", size, expected, box_url)
        sdk_mb_s.append(speed)
        sdk_rss.append(rss)
        speed, rss, _ = _measure(servers, "box_bench:offsite_upload", size, expected, box_url)
        offsite_mb_s.append(speed)
        offsite_rss.append(rss)
    part_size = 8 * 1024 * 1024  # the part size the Box API hands out for these sizes
    limit_mb = (PARALLEL_PARTS * part_size + RSS_SLACK_BYTES) / MB
    row = Row(
        scenario="box",
        case=f"chunked upload {size / 1e9:g} GB GCS→Box, {network}",
        unit="MB/s",
        offsite=median(offsite_mb_s),
        peer=median(sdk_mb_s),
        peer_name=PEER,
        target=(f">= {ratio_target:g}x SDK, " if ratio_target else "ratio reported, ")
        + f"RSS <= baseline + {PARALLEL_PARTS}x part + 64 MB",
        peak_rss_mb=max(offsite_rss),
        rss_limit_mb=limit_mb,
        runs=len(offsite_mb_s),
        notes=f"{PARALLEL_PARTS} parts in flight; SDK peak RSS over baseline {max(sdk_rss):.0f} MB; network {network}",
        samples={
            "offsite_mb_s": offsite_mb_s,
            "sdk_mb_s": sdk_mb_s,
            "offsite_rss_mb": offsite_rss,
            "sdk_rss_mb": sdk_rss,
        },
    )
    ratio = row.ratio
    fast_enough = None if ratio_target is None else ratio is not None and ratio >= ratio_target
    row.passed = all_of(fast_enough, within_rss(row.peak_rss_mb, limit_mb))
    return row.to_dict()


def main(argv: list[str] | None = None) -> int:
    return scenario_main(run, __doc__, SIZE_QUICK, SIZE_FULL, argv)


if __name__ == "__main__":
    sys.exit(main())
