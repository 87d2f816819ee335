"""Restore: a 200 MB run brought back from the local Box, offsite vs box-sdk-gen's plain download.

Set-up (not timed): one table of random payload (200 MB; 10 MB with ``--quick``) in the stack's
BigQuery, exported and delivered to the local Box by the stack's own functions (one export
request, waited for until verify says ``in_sync``).

- offsite: ``shared.restore`` as ``offsite restore RUN_ID --from box`` runs it, in a child
  process: find the run's manifest at Box (listing + download), then each file streamed from Box
  through a SHA-1 into a resumable upload to a staging bucket in the GCS emulator
  (``stage.stage_file``, 8 MiB chunks) — the **read + verify + stage** figure, MB/s; then one
  load job with the manifest's schema and the proof (row count, schema, fingerprint) — the
  **load** figure, seconds, reported apart (it is the BigQuery side: bqemulator behind the front).
- peer: box-sdk-gen ``downloads.download_file`` of the same files (ids looked up before the
  clock starts), each read to the end in 1 MiB blocks and thrown away: the floor of reading the
  bytes from Box, no hashing, no staging.

Memory: peak RSS of the restore child over its baseline (after imports, before the restore),
stage and load together. Target ≤ baseline + 128 MB: staging holds one 8 MiB upload chunk per
file at a time, so the figure must not grow with the run's size.
"""

from __future__ import annotations

import os
import time
from typing import Any

from bench.children import mark_start, python_child, run_child
from bench.common import MB, MIN_RUNS, Row, all_of, median, within_rss
from bench.stack_watch import Watch, stack_env

DATASET = "bench_restore"
TABLE = "t00"
TOTAL_BYTES_FULL = 200_000_000  # bqemulator's load of 1 GB grew past 20 GB RSS and was OOM-killed (24 GB machine)
TOTAL_BYTES_QUICK = 10_000_000  # chosen when the local FARM_FINGERPRINT cost ~1 ms a row (docs/performance.md)
STAGING_BUCKET = "offsite-bench-restore-staging"
RESTORED_DATASET = "bench_restored"
RSS_LIMIT_MB = 128.0
PEER = "box-sdk-gen download_file"
READ_BLOCK = 1024 * 1024

STACK_CONFIG = {"datasets": [{"name": DATASET, "destinations": ["box"]}]}


# ---- children ------------------------------------------------------------------------------------


def offsite_restore(run_id: str, to: str) -> dict[str, Any]:
    """Child: locate + stage (read, SHA-1 check, stage) timed, then load + proof timed apart."""
    from shared import runtime
    from shared.destinations import factory
    from shared.gcp import clients
    from shared.gcp.bigquery import BigQueryWarehouse
    from shared.restore import restore as restoring
    from shared.restore.load import prove, run_load
    from shared.restore.stage import stage_file

    config = runtime.config()
    wh = BigQueryWarehouse(clients.bigquery_client())
    with factory.opened("box", config) as box:
        mark_start()
        started = time.perf_counter()
        plan = restoring.plan(
            box,
            run_id,
            target=to,
            staging_bucket=STAGING_BUCKET,
            table=f"{DATASET}.{TABLE}",
            disposition="truncate",
        )
        run = plan.run
        staged = [stage_file(box, run, f, STAGING_BUCKET, plan.staging_folder) for f in run.manifest.files]
        stage_s = time.perf_counter() - started
        started = time.perf_counter()
        job_id = f"offsite_restore_bench_{run_id}_{os.getpid()}_{int(time.time())}"
        run_load(wh.client, [s.uri for s in staged], to, run.manifest, "truncate", job_id)
        proof = prove(wh, to, run.manifest)
        load_s = time.perf_counter() - started
    return {
        "seconds": stage_s + load_s,
        "stage_s": stage_s,
        "load_s": load_s,
        "bytes": sum(s.size for s in staged),
        "files": len(staged),
        "equal": proof.equal,
        "problems": proof.problems,
        "rows": proof.rows,
    }


def sdk_download(box_url: str, token: str, file_ids: list[str]) -> dict[str, Any]:
    """Child: the same files with box-sdk-gen, each read to the end and dropped."""
    from box_sdk_gen import BoxClient, BoxDeveloperTokenAuth
    from box_sdk_gen.networking.base_urls import BaseUrls

    urls = BaseUrls(base_url=box_url, upload_url=box_url + "/api", oauth_2_url=box_url + "/oauth2")
    client = BoxClient(auth=BoxDeveloperTokenAuth(token=token)).with_custom_base_urls(urls)
    mark_start()
    started = time.perf_counter()
    size = 0
    for file_id in file_ids:
        stream = client.downloads.download_file(file_id)
        while block := stream.read(READ_BLOCK):
            size += len(block)
        stream.close()
    return {"seconds": time.perf_counter() - started, "bytes": size}


# ---- set-up and the scenario ---------------------------------------------------------------------


def export_to_box(stack: Any, watch: Watch, timeout_s: float) -> str:
    """One export of ``DATASET`` through the stack's functions, waited for until Box is in_sync."""
    from shared.gcp import pubsub
    from shared.messages import ExportRequest
    from shared.topology import EXPORT_REQUESTS, VERIFY_RESULTS

    run_id = f"br-{int(time.time())}"
    pubsub.publish(EXPORT_REQUESTS, ExportRequest(dataset=DATASET, run_id=run_id))

    def results() -> list[Any]:
        return watch.select(VERIFY_RESULTS, lambda s: s.data.get("run_id") == run_id)

    watch.wait(lambda: bool(results()), timeout_s, f"the verify result of run {run_id} at Box")
    status = results()[0].data.get("status")
    if status != "in_sync":
        raise RuntimeError(f"run {run_id} at Box is {status}, not in_sync: {results()[0].data}")
    return run_id


def box_file_ids(run_id: str) -> list[str]:
    """The Box ids of the run's data files (for the SDK), in manifest order."""
    from shared import runtime
    from shared.destinations import factory
    from shared.restore.locate import find_run

    with factory.opened("box", runtime.config()) as box:
        run = find_run(box, run_id, f"{DATASET}.{TABLE}")
        ids = []
        for f in run.manifest.files:
            remote = box.stat(run.path_of(f.name))
            if remote is None or remote.remote_id is None:
                raise RuntimeError(f"{run.path_of(f.name)} is not at Box")
            ids.append(remote.remote_id)
    return ids


def clear_staging() -> None:
    from shared.gcp import clients

    for blob in clients.storage_client().list_blobs(STAGING_BUCKET):
        blob.delete()


def run(quick: bool, stack: Any = None, runs: int = MIN_RUNS) -> list[dict[str, Any]]:
    if stack is None:
        raise RuntimeError("the restore benchmark needs the local stack (bench/run.py starts it)")
    from bench.e2e_bench import seed
    from shared.gcp import clients

    total = TOTAL_BYTES_QUICK if quick else TOTAL_BYTES_FULL
    env = {**os.environ, **stack.env}
    target = f"{stack.project}.{RESTORED_DATASET}.{TABLE}"
    offsite: list[dict[str, Any]] = []
    sdk: list[dict[str, Any]] = []
    with stack_env(stack):
        seed(stack.project, total, dataset=DATASET, tables=1)
        storage = clients.storage_client()
        if storage.lookup_bucket(STAGING_BUCKET) is None:
            storage.create_bucket(STAGING_BUCKET)
        clients.bigquery_client().create_dataset(f"{stack.project}.{RESTORED_DATASET}", exists_ok=True)
        with Watch(stack, ["verify-results"]) as watch:
            run_id = export_to_box(stack, watch, timeout_s=600 + total / MB)
        file_ids = box_file_ids(run_id)
        print(f"   run {run_id}: {len(file_ids)} files at Box", flush=True)
        for _ in range(max(1, runs)):
            peer = run_child(
                python_child(
                    "restore_bench:sdk_download",
                    box_url=stack.box.base_url,
                    token=stack.box.developer_token,
                    file_ids=file_ids,
                ),
                env=env,
                interval_s=0.05,
            )
            sdk.append({"seconds": peer.seconds, "bytes": peer.result["bytes"], "rss_mb": peer.rss_over_baseline / MB})
            ours = run_child(
                python_child("restore_bench:offsite_restore", run_id=run_id, to=target), env=env, interval_s=0.05
            )
            if not ours.result.get("equal"):
                raise RuntimeError(f"the restored table is not proven equal: {ours.result.get('problems')}")
            offsite.append({**ours.result, "rss_mb": ours.rss_over_baseline / MB})
            clear_staging()
    return [summarize(offsite, sdk).to_dict()]


def summarize(offsite: list[dict[str, Any]], sdk: list[dict[str, Any]]) -> Row:
    size = offsite[0]["bytes"]
    if any(s["bytes"] != size for s in sdk):
        raise RuntimeError(f"the SDK read {sdk[0]['bytes']} bytes, the restore staged {size}")
    rss = max(o["rss_mb"] for o in offsite)
    load_s = median([o["load_s"] for o in offsite])
    row = Row(
        scenario="restore",
        case=f"{size / 1e9:.2g} GB run from Box: read + SHA-1 + stage (load apart)",
        unit="MB/s",
        offsite=median([size / MB / o["stage_s"] for o in offsite]),
        peer=median([size / MB / s["seconds"] for s in sdk]),
        peer_name=PEER,
        target=f"RSS <= baseline + {RSS_LIMIT_MB:.0f} MB",
        peak_rss_mb=rss,
        rss_limit_mb=RSS_LIMIT_MB,
        runs=len(offsite),
        notes=(
            f"{offsite[0]['files']} files, {offsite[0]['rows']:,} rows proven equal; load + proof {load_s:.1f} s "
            f"(median); SDK peak RSS over baseline {max(s['rss_mb'] for s in sdk):.0f} MB"
        ),
        samples={"offsite": offsite, "sdk": sdk, "load_s": load_s},
    )
    row.passed = all_of(within_rss(rss, RSS_LIMIT_MB))
    return row
