"""End to end: 10 tables, ~1 GB in all → Box + SFTP → both verified in_sync, through the local stack.

One export request for the ``bench_e2e`` dataset (destinations box and sftp:local) goes through
every function of the running stack: fan_out → export_table (the stack's BigQuery front) → GCS
finalize → upload_box and transfer_sftp → delivery receipts → verify. The bench only watches, with
pull subscriptions of its own on table-exports, gcs-notifications, deliveries, verify-results and
BigQuery's audit-log topic (the jobs' completion entries); what it counts there is set beside the
capacity model's formulas (bench/capacity_model.py) for the run's shape.

Wall time: from just before the request is published to the last verify result (20: one per
table and destination). It is split at milestones that follow one another, so the shares add
up to 100 %:
- fan-out: request → last TableExport published;
- export: → last ``_manifest.json`` created (deliveries start with the first data file and
  overlap this stage);
- delivery tail: → last delivery receipt (Box or SFTP) after the last manifest;
- verify tail: → last in_sync result.
Each destination's own span (first data file created → its last receipt) is reported too.
Tables hold random bytes (incompressible, like real Parquet of varied data).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench.children import RssSampler, machine_cpu_s, tree_cpu_s
from bench.common import MB, MIN_RUNS, Row, median
from bench.overlap import TARGET_FACTOR, Overlap, measure_alone, median_overlap
from bench.stack_watch import Watch, epoch, purge_run, stack_env
from devstack.launches import AUDIT_LOG_TOPIC

DATASET = "bench_e2e"
TABLES = 10
TOTAL_BYTES_FULL = 1_000_000_000
TOTAL_BYTES_QUICK = 20_000_000  # chosen when the local FARM_FINGERPRINT cost ~1 ms a row (docs/performance.md)
PAYLOAD_BYTES = 2_000  # per row
DESTINATIONS = ["box", "sftp:local"]


def table_names(tables: int) -> list[str]:
    """What :func:`seed` names them: t00, t01, … (t000… from 100 tables on)."""
    width = max(2, len(str(tables - 1)))
    return [f"t{i:0{width}d}" for i in range(tables)]


TABLE_NAMES = table_names(TABLES)
FUNCTIONS = ("export_table", "upload_box", "transfer_sftp", "verify")

STACK_CONFIG = {"datasets": [{"name": DATASET, "destinations": DESTINATIONS}]}


def seed(project: str, total_bytes: int, dataset: str = DATASET, tables: int = TABLES) -> int:
    """(Re)create ``tables`` tables ``tNN`` of random payload, ``total_bytes`` in all; returns the rows per table."""
    import numpy as np
    import pyarrow as pa
    from google.cloud import bigquery

    from devstack.sample_data import load_table
    from shared.gcp import clients

    client = clients.bigquery_client()
    client.create_dataset(f"{project}.{dataset}", exists_ok=True)
    rows = max(1, total_bytes // tables // PAYLOAD_BYTES)
    schema = [bigquery.SchemaField("id", "INT64", mode="REQUIRED"), bigquery.SchemaField("payload", "BYTES")]
    rng = np.random.default_rng(42)
    offsets = pa.array(np.arange(0, (rows + 1) * PAYLOAD_BYTES, PAYLOAD_BYTES, dtype=np.int32))
    for name in table_names(tables):
        blob = pa.py_buffer(rng.bytes(rows * PAYLOAD_BYTES))
        payload = pa.Array.from_buffers(pa.binary(), rows, [None, offsets.buffers()[1], blob])
        data = pa.table({"id": pa.array(np.arange(rows, dtype=np.int64)), "payload": payload})
        load_table(client, f"{project}.{dataset}.{name}", schema, data)
    return rows


def measure_once(
    watch: Watch,
    run_id: str,
    samplers: dict[str, RssSampler],
    timeout_s: float,
    dataset: str = DATASET,
    tables: int = TABLES,
) -> dict[str, Any]:
    """One run of ``dataset`` (``tables`` tables) → every destination in_sync: times, CPU, RSS and
    the counts the capacity model predicts."""
    from devstack.boxapi import BoxApiServer
    from shared.gcp import pubsub
    from shared.messages import ExportRequest
    from shared.topology import EXPORT_REQUESTS

    def verified() -> bool:
        results = _results(watch, run_id)
        bad = [r.data for r in results if r.data.get("status") != "in_sync"]
        if bad:
            raise RuntimeError(f"run {run_id}: {bad[0].get('status')} at {bad[0].get('destination')}: {bad[0]}")
        return len(results) >= tables * len(DESTINATIONS)

    watch.forget()  # earlier runs' messages: every wait below would scan them
    baselines = {name: sampler.reset_peak() for name, sampler in samplers.items()}
    box = BoxApiServer.attach(watch.info.box.base_url)  # the stack's Box API, through its admin API
    box.clear_requests()
    components = {c.name: c.pid for c in watch.info.components}
    tree_cpu0 = {name: tree_cpu_s(pid) for name, pid in components.items()}
    t0, cpu0 = time.time(), machine_cpu_s()
    pubsub.publish(EXPORT_REQUESTS, ExportRequest(dataset=dataset, run_id=run_id))
    try:
        watch.wait(verified, timeout_s, f"{tables}×{len(DESTINATIONS)} in_sync results of run {run_id}")
        cpu_s = machine_cpu_s() - cpu0  # to when the watch saw the last result (its poll after the wall)
        component_cpu = {name: tree_cpu_s(pid) - tree_cpu0[name] for name, pid in components.items()}
    except TimeoutError as exc:
        have = {
            (str((r.data.get("source") or {}).get("table")), r.data.get("destination")) for r in _results(watch, run_id)
        }
        missing = [f"{t}@{d}" for t in table_names(tables) for d in DESTINATIONS if (t, d) not in have]
        raise TimeoutError(f"{exc}; no result for {', '.join(missing)} (see the stack's function logs)") from None
    peaks = {name: (sampler.peak - baselines[name]) / MB for name, sampler in samplers.items()}
    # the process's own peak too: one that served earlier runs (or scenarios) may already sit at
    # its high-water mark, so its growth reads 0 while its size is not
    peaks_absolute = {name: sampler.peak / MB for name, sampler in samplers.items()}
    record = _run_record(watch, run_id, t0, box_calls=sum(box.request_counts().values()))
    purge_run(watch.info, [f"exports/{dataset}/", "results/"], run_id)
    return {
        **record,
        "cpu_s": cpu_s,
        "component_cpu_s": component_cpu,
        "function_rss_mb": peaks,
        "function_peak_mb": peaks_absolute,
        "watch_redelivered": watch.redelivered,
    }


def _results(watch: Watch, run_id: str) -> list[Any]:
    from shared.topology import VERIFY_RESULTS

    return watch.select(VERIFY_RESULTS, lambda s: s.data.get("run_id") == run_id)


def _finalized(watch: Watch, run_id: str) -> list[tuple[str, Any]]:
    """(file name, finalize event) of every object directly in this run's folders. Only the
    exports bucket's: the state bucket's notifications share the topic, and its run index
    (``run-index/{run_id}/{dataset}-….json``) would count as a data file."""
    marker = f"/{run_id}/"
    found = []

    def in_exports(s: Any) -> bool:
        return s.attributes.get("eventType") == "OBJECT_FINALIZE" and s.attributes.get("bucketId") == watch.info.bucket

    for s in watch.select("gcs-notifications", in_exports):
        _, in_run, rest = s.attributes.get("objectId", "").partition(marker)
        if in_run and "/" not in rest:
            found.append((rest, s))
    return found


def _run_record(watch: Watch, run_id: str, t0: float, *, box_calls: int) -> dict[str, Any]:
    """A verified run's times (from the messages the watch saw), sizes and counts."""
    from shared.topology import DELIVERIES, TABLE_EXPORTS

    results = _results(watch, run_id)
    exports = watch.select(TABLE_EXPORTS, lambda s: s.attributes.get("run_id") == run_id)
    objects = _finalized(watch, run_id)
    data_files = [s for name, s in objects if not name.startswith("_")]
    manifests = [s for name, s in objects if name == "_manifest.json"]
    receipts = watch.select(DELIVERIES, lambda s: s.data.get("run_id") == run_id)
    t_fanout = max(s.published for s in exports)
    t_exported = max(epoch(s.data["timeCreated"]) for s in manifests)
    t_delivered = max(s.published for s in receipts)
    t_verified = max(s.published for s in results)
    first_file = min(epoch(s.data["timeCreated"]) for s in data_files)
    run_records = [s for name, s in objects if name == "_run.json"]

    def span(destination: str) -> float:
        mine = [s.published for s in receipts if s.data.get("destination", "").startswith(destination)]
        return max(mine) - first_file

    jobs_done = watch.select(
        AUDIT_LOG_TOPIC, lambda s: f"/jobs/offsite_{run_id}_" in s.data["protoPayload"]["resourceName"]
    )
    receipted = Counter((s.data.get("destination"), s.data.get("object")) for s in receipts)
    return {
        "wall_s": t_verified - t0,
        "bytes": sum(int(s.data["size"]) for s in data_files),
        "files": len(data_files),
        "stages_s": {
            "fan-out": t_fanout - t0,
            "export": t_exported - t_fanout,
            "delivery tail": max(0.0, t_delivered - t_exported),
            "verify tail": t_verified - max(t_delivered, t_exported),
        },
        "box_span_s": span("box"),
        "sftp_span_s": span("sftp"),
        "export_span_s": t_exported - min(epoch(s.data["timeCreated"]) for s in run_records),
        "counts": {
            "table_exports": len(exports),
            "job_completed_events": len(jobs_done),
            "export_table_invocations": len(exports) + len(jobs_done),  # what export_table's triggers delivered
            "gcs_objects": len(objects),
            "deliveries": len(receipts),
            "verify_results": len(results),
            "box_api_calls": box_calls,
        },
        # a file receipted twice at a destination: its delivery ran again (a redelivered event)
        "receipted_twice": sorted(f"{obj}@{dest}" for (dest, obj), n in receipted.items() if n > 1),
    }


def model_check(sample: dict[str, Any], tables: int = TABLES) -> dict[str, tuple[int, int]]:
    """(measured, modelled) per count: bench/capacity_model.counts for this run's shape.

    The capacity model's formulas (docs/capacity.md) are checked here against a real run."""
    from bench.capacity_model import Shape, cold_folder_slots, counts

    files = max(1, sample["files"])
    shape = Shape(
        tables=tables,
        total_bytes=float(sample["bytes"]),
        # rounded up: rounded down, files per table came out a hair above the measured 2 and the
        # model's ceiling made it 3 (60 objects modelled against 50 in the 2026-12-02 run)
        file_bytes=float(math.ceil(sample["bytes"] / files)),
        destinations=tuple(DESTINATIONS),
        folder_slots=cold_folder_slots(instances=1),  # the local stack runs one process a function
    )
    model = counts(shape)
    return {name: (measured, model[name]) for name, measured in sample["counts"].items() if name in model}


TOPICS = ("table-exports", "gcs-notifications", "deliveries", "verify-results", AUDIT_LOG_TOPIC)


@contextmanager
def seeded_and_watched(
    stack: Any, total: int, dataset: str = DATASET, tables: int = TABLES, sample_s: float = 0.05
) -> Iterator[tuple[Watch, dict[str, RssSampler]]]:
    """``dataset`` seeded with ``tables`` tables of ``total`` bytes, the functions' RSS sampled
    and the run's topics watched: what :func:`measure_once` needs, inside the stack's env."""
    pids = {c.name: c.pid for c in stack.components if c.name in FUNCTIONS}
    with stack_env(stack):
        started = time.perf_counter()
        rows = seed(stack.project, total, dataset, tables)
        print(f"   seeded {tables} tables × {rows:,} rows in {time.perf_counter() - started:.0f} s", flush=True)
        samplers = {name: RssSampler(pid, sample_s) for name, pid in pids.items()}
        with Watch(stack, list(TOPICS)) as watch:
            for sampler in samplers.values():
                sampler.__enter__()
            try:
                yield watch, samplers
            finally:
                for sampler in samplers.values():
                    sampler.stop()


def run(quick: bool, stack: Any = None, runs: int = MIN_RUNS) -> list[dict[str, Any]]:
    if stack is None:
        raise RuntimeError("the end-to-end benchmark needs the local stack (bench/run.py starts it)")
    total = TOTAL_BYTES_QUICK if quick else TOTAL_BYTES_FULL
    samples: list[dict[str, Any]] = []
    with seeded_and_watched(stack, total) as (watch, samplers):
        for k in range(max(1, runs)):
            run_id = f"be-{int(time.time())}-{k}"
            samples.append(measure_once(watch, run_id, samplers, timeout_s=600 + total / MB))
            s = samples[-1]
            stages = ", ".join(f"{n} {v:.1f}" for n, v in s["stages_s"].items())
            print(f"   run {k + 1}: {s['wall_s']:.1f} s for {s['bytes'] / MB:.0f} MB ({stages})", flush=True)
            print(f"   run {k + 1}, CPU-s by stack process: {by_component(s['component_cpu_s'])}", flush=True)
            alone = measure_alone(stack, DATASET, TABLE_NAMES, DESTINATIONS, f"{run_id}-alone")
            s["alone_s"], s["alone_cpu_s"] = alone
            overlap = overlap_of(s)
            print(f"   run {k + 1}, stages alone: {overlap.describe()}; {overlap.describe_cpu()}", flush=True)
    return [summarize(samples, total).to_dict(), overlap_row(samples).to_dict()]


def by_component(cpu: dict[str, float]) -> str:
    """The stack's processes (each with its children) by CPU-seconds, most first; idle ones left out."""
    busy = sorted(((n, s) for n, s in cpu.items() if s >= 0.05), key=lambda kv: -kv[1])
    return ", ".join(f"{name} {seconds:.1f}" for name, seconds in busy) or "none measured"


def summarize(samples: list[dict[str, Any]], total: int) -> Row:
    wall = median([s["wall_s"] for s in samples])
    size = samples[0]["bytes"]
    stages = {name: median([s["stages_s"][name] for s in samples]) for name in samples[0]["stages_s"]}
    shares = ", ".join(f"{name} {seconds / wall:.0%}" for name, seconds in stages.items())
    # Median of the runs' peaks: the first run also pays each function's lazy imports.
    rss = {name: median([s["function_rss_mb"][name] for s in samples]) for name in samples[0]["function_rss_mb"]}
    size_mb = {name: median([s["function_peak_mb"][name] for s in samples]) for name in rss}
    return Row(
        scenario="e2e",
        case=f"{TABLES} tables, {size / 1e9:.2g} GB → Box + SFTP → in_sync",
        unit="MB/s",
        offsite=size / MB / wall,
        target="all runs in_sync at both destinations",
        passed=True,  # measure_once raises on anything but in_sync
        peak_rss_mb=max(rss.values()) if rss else None,
        runs=len(samples),
        notes=(
            f"wall {wall:.1f} s (median): {shares}; spans from the first data file: "
            f"box {median([s['box_span_s'] for s in samples]):.1f} s, sftp {median([s['sftp_span_s'] for s in samples]):.1f} s; "
            f"{samples[0]['files']} files; peak RSS over baseline per function (its peak): "
            + ", ".join(f"{n} {v:.0f} MB ({size_mb[n]:.0f} MB)" for n, v in rss.items())
            + "; CPU-s by stack process (median): "
            + by_component(
                {n: median([s["component_cpu_s"][n] for s in samples]) for n in samples[0]["component_cpu_s"]}
            )
            + "; counts measured/capacity model: "
            + ", ".join(f"{n} {m}/{p}" for n, (m, p) in model_check(samples[0]).items())
        ),
        samples={"runs": samples, "wall_s": wall, "stages_s": stages, "requested_bytes": total},
    )


def overlap_of(sample: dict[str, Any]) -> Overlap:
    """One run's wall time and machine CPU against its stages alone (records before the CPU was
    measured have none)."""
    return Overlap(sample["wall_s"], sample["alone_s"], sample.get("cpu_s"), sample.get("alone_cpu_s") or {})


def overlap_row(samples: list[dict[str, Any]]) -> Row:
    """The pipeline's wall time against its slowest stage alone (bench/overlap.py), medians."""
    overlap = median_overlap([overlap_of(s) for s in samples])
    name, slowest = overlap.slowest
    row = Row(
        scenario="e2e",
        case=f"overlap: wall vs slowest stage alone ({name})",
        unit="s",
        offsite=overlap.wall_s,
        peer=slowest,
        peer_name=f"{name} alone",
        higher_is_better=False,
        target=f"wall <= {TARGET_FACTOR:g}x slowest stage alone",
        passed=overlap.passed(),
        runs=len(samples),
        notes="; ".join(
            part
            for part in (overlap.describe(), f"stages in a row {overlap.serial_s:.1f} s", overlap.describe_cpu())
            if part
        ),
        samples={
            "wall_s": overlap.wall_s,
            "alone_s": overlap.alone_s,
            "cpu_s": overlap.wall_cpu_s,
            "alone_cpu_s": overlap.alone_cpu_s,
            "cpu_floor_s": overlap.cpu_floor_s,
            "factor": overlap.factor,
            "hidden": overlap.hidden,
        },
    )
    return row
