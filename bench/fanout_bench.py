"""Fan-out scale: one export request for a dataset of N tables → N table exports → N export jobs started.

Two figures per size N, both against the emulators of the running local stack:

1. fan_out's code path (``shared.stages.fan_out.fan_out``), in a child process, on a CloudEvent like the
   one functions-framework hands it: list the dataset in bqemulator, plan, publish N TableExport
   messages on the Pub/Sub emulator. Peer: the floor — the same N messages published with the
   same client all at once (every future first, then wait). The messages go to a sandbox
   project's ``table-exports`` topic on the same emulator, which nothing consumes, so this
   measures fan_out alone. Peak RSS is that child's, over its baseline.
2. The pipeline, through the real trigger: the bench publishes ``{"dataset": …, "run_id": …}``
   on ``export-requests``; the stack's fan_out function fans out; push subscriptions deliver each
   TableExport to the export_table function.
   - t0: just before the bench publishes the request;
   - job started: the ``timeCreated`` of the table's ``_run.json`` in GCS — the first thing
     export_table writes, after parsing and checking the message and before any BigQuery call;
   - pipeline time = (last job started) − t0; target ≤ 2 s at 100 tables. Stack start-up is
     outside it. Each run waits until every export wrote its manifest and was verified before the
     next starts, so runs do not overlap, then deletes the run's objects (untimed) so every run
     starts from the same bucket. Tables hold one row: export work is not what is measured.
"""

from __future__ import annotations

import base64
import math
import time
from typing import Any

from bench.children import RssSampler, mark_start, python_child, run_child
from bench.common import MB, MIN_RUNS, Row, median
from bench.stack_watch import Watch, epoch, purge_run, stack_env

SIZES_FULL = (10, 100, 500)
SIZES_QUICK = (10, 100)
PIPELINE_SIZES_QUICK = (5, 15)  # through the stack each table costs ~0.3 s (see docs/performance.md)
TARGET_TABLES = 100
TARGET_S = 2.0
MAX_GROWTH_EXPONENT = 1.1  # t ∝ N^k; k ≤ 1 is linear or better, 10 % slack for noise
DESTINATIONS = ["sftp:local"]  # one cheap destination: the downstream work of each run is not measured
SANDBOX_PROJECT = "bench-fanout-sandbox"

STACK_CONFIG = {
    "datasets": [
        {"name": f"bench_fanout_{n}", "destinations": DESTINATIONS}
        for n in sorted({*SIZES_FULL, *SIZES_QUICK, *PIPELINE_SIZES_QUICK})
    ]
}


def dataset_name(tables: int) -> str:
    return f"bench_fanout_{tables}"


def seed_dataset(project: str, tables: int) -> None:
    """``bench_fanout_N`` with tables t0000…: one row each (an empty table exports no file)."""
    from google.cloud import bigquery

    from shared.gcp import clients

    client = clients.bigquery_client()
    dataset = f"{project}.{dataset_name(tables)}"
    client.create_dataset(dataset, exists_ok=True)
    existing = {t.table_id for t in client.list_tables(dataset)}
    schema = [bigquery.SchemaField("id", "INT64"), bigquery.SchemaField("name", "STRING")]
    for i in range(tables):
        name = f"t{i:04d}"
        if name in existing:
            continue
        table = client.create_table(bigquery.Table(f"{dataset}.{name}", schema=schema))
        errors = client.insert_rows_json(table, [{"id": i, "name": name}])
        if errors:
            raise RuntimeError(f"seeding {dataset}.{name}: {errors}")


# ---- 1. fan_out's code path, in a child process -------------------------------------------------


def _request_event(dataset: str, run_id: str) -> dict[str, Any]:
    """A messagePublished CloudEvent as functions-framework hands it to the function."""
    from shared.messages import ExportRequest
    from shared.topology import EXPORT_REQUESTS, PUBSUB_PUBLISHED

    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    data = base64.b64encode(ExportRequest(dataset=dataset, run_id=run_id).to_json()).decode()
    return {
        "id": run_id,
        "type": PUBSUB_PUBLISHED,
        "source": f"//pubsub.googleapis.com/projects/{SANDBOX_PROJECT}/topics/{EXPORT_REQUESTS}",
        "data": {"message": {"data": data, "messageId": run_id, "publishTime": now}},
    }


def code_path_child(tables: int, runs: int, config_path: str, project: str, peer: bool) -> dict[str, Any]:
    """Child: ``runs`` fan_out calls (or, as the peer, batched publishes of the same messages)."""
    from shared.config_load import load_config
    from shared.gcp import clients
    from shared.gcp.bigquery import BigQueryWarehouse
    from shared.stages import fan_out as stage
    from shared.topology import TABLE_EXPORTS

    config = load_config(config_path)
    wh = BigQueryWarehouse(clients.bigquery_client(), project)
    publisher = clients.publisher_client()
    topic = publisher.topic_path(SANDBOX_PROJECT, TABLE_EXPORTS)
    stage.fan_out(_request_event(dataset_name(10), "warmup"), config=config, wh=wh)  # channels, imports
    seconds = []
    mark_start()
    for k in range(runs):
        event = _request_event(dataset_name(tables), f"bfp{tables}-{k}")
        if peer:
            message = stage.parse_pubsub(event)
            exports = stage.plan(
                stage.ExportRequest.from_json(message.data), config, wh, run_id=f"bfp{tables}-{k}", publish_time=""
            )
            started = time.perf_counter()
            futures = [publisher.publish(topic, e.to_json(), run_id=e.run_id) for e in exports]
            for future in futures:
                future.result(timeout=60)
        else:
            started = time.perf_counter()
            exports = stage.fan_out(event, config=config, wh=wh)
        seconds.append(time.perf_counter() - started)
        assert len(exports) == tables, f"fan_out planned {len(exports)} exports for {tables} tables"
    return {"runs": seconds}


def measure_code_path(info: Any, tables: int, runs: int) -> Row:
    from google.cloud import pubsub_v1

    publisher = pubsub_v1.PublisherClient()
    path = publisher.topic_path(SANDBOX_PROJECT, "table-exports")
    try:
        publisher.create_topic(name=path)
    except Exception as exc:
        if "AlreadyExists" not in type(exc).__name__:
            raise
    env = {**info.env, "GOOGLE_CLOUD_PROJECT": SANDBOX_PROJECT, "OFFSITE_LOG_LEVEL": "warning"}
    args = {"tables": tables, "runs": runs, "config_path": str(info.config_path), "project": info.project}
    ours = run_child(python_child("fanout_bench:code_path_child", **args, peer=False), env=env)
    floor = run_child(python_child("fanout_bench:code_path_child", **args, peer=True), env=env)
    ours_s, floor_s = median(ours.result["runs"]), median(floor.result["runs"])
    return seconds_row(
        f"{tables} tables: fan_out code path (list + plan + publish)",
        offsite=ours_s,
        peer=floor_s,
        peer_name="batched publish",
        peak_rss_mb=ours.rss_over_baseline / MB,
        runs=runs,
        notes="in a child process against bqemulator + the Pub/Sub emulator; peer = the same messages, all futures then wait",
        samples={"offsite_s": ours.result["runs"], "peer_s": floor.result["runs"]},
    )


# ---- 2. the pipeline, through the stack's functions -----------------------------------------


def measure_pipeline_once(watch: Watch, tables: int, run_id: str, sampler: RssSampler) -> dict[str, float]:
    from shared.gcp import pubsub
    from shared.messages import ExportRequest
    from shared.topology import EXPORT_REQUESTS, TABLE_EXPORTS, VERIFY_RESULTS

    def finalized(suffix: str) -> list[Any]:
        tail = f"/{run_id}/{suffix}"
        return [
            s
            for s in watch.select("gcs-notifications", lambda s: s.attributes.get("objectId", "").endswith(tail))
            if s.attributes.get("eventType") == "OBJECT_FINALIZE"
        ]

    def created(suffix: str) -> list[float]:
        return [epoch(s.data["timeCreated"]) for s in finalized(suffix)]

    def results() -> list[Any]:
        return watch.select(VERIFY_RESULTS, lambda s: s.data.get("run_id") == run_id)

    def all_started() -> bool:
        rejected = [r.data for r in results() if r.data.get("status") in ("rejected", "failed")]
        if rejected:
            raise RuntimeError(f"run {run_id} was {rejected[0]['status']}: {rejected[0].get('reason')}")
        return len(created("_run.json")) >= tables

    watch.forget()  # earlier runs' messages: every wait below would scan them
    baseline = sampler.reset_peak()
    t0 = time.time()
    pubsub.publish(EXPORT_REQUESTS, ExportRequest(dataset=dataset_name(tables), run_id=run_id))
    budget = 60 + tables * 1.0
    watch.wait(all_started, budget, f"{tables} _run.json of run {run_id}")
    started = max(created("_run.json")) - t0
    exports = watch.select(TABLE_EXPORTS, lambda s: s.attributes.get("run_id") == run_id)
    fan_out_peak = sampler.peak - baseline
    watch.wait(lambda: len(created("_manifest.json")) >= tables, budget * 2, f"{tables} manifests of run {run_id}")
    try:
        watch.wait(lambda: len(results()) >= tables, budget * 2, f"{tables} verify results of run {run_id}")
    except TimeoutError as exc:
        # name the tables exported but not verified, so a lost result is told apart from a slow
        # hour (a run of 2026-12-03 night timed out with neither known)
        exported = {s.attributes["objectId"].split("/")[2] for s in finalized("_manifest.json")}
        verified = {(r.data.get("source") or {}).get("table") for r in results()}
        missing = sorted(exported - verified)
        raise TimeoutError(
            f"{exc}; {len(exported)} tables exported, {len(verified)} verified, none yet for {missing[:10]}"
        ) from exc
    bad = [r.data for r in results() if r.data.get("status") != "in_sync"]
    if bad:
        raise RuntimeError(f"run {run_id}: {len(bad)} of {tables} table runs not in_sync, e.g. {bad[0]}")
    purge_run(watch.info, [f"exports/{dataset_name(tables)}/", "results/"], run_id)
    return {
        "published_s": max(s.published for s in exports) - t0 if exports else math.nan,
        "started_s": started,
        "exported_s": max(created("_manifest.json")) - t0,
        "verified_s": max(r.published for r in results()) - t0,
        "fan_out_rss_mb": fan_out_peak / MB,
    }


def measure_pipeline(watch: Watch, sampler: RssSampler, tables: int, runs: int) -> Row:
    samples = []
    for k in range(runs):
        run_id = f"bf{tables}-{int(time.time())}-{k}"
        samples.append(measure_pipeline_once(watch, tables, run_id, sampler))
        print(
            f"   {tables} tables, run {k + 1}: " + ", ".join(f"{n} {v:.2f}" for n, v in samples[-1].items()), flush=True
        )
    started = median([s["started_s"] for s in samples])
    target = tables == TARGET_TABLES
    published = median([s["published_s"] for s in samples])
    return seconds_row(
        f"{tables} tables: request → last job started (stack)",
        offsite=started,
        target=f"<= {TARGET_S:.0f} s" if target else "",
        passed=(started <= TARGET_S) if target else None,
        peak_rss_mb=max(s["fan_out_rss_mb"] for s in samples),
        runs=len(samples),
        notes=(
            f"all {tables} table-exports published at {published:.2f} s; all exported at "
            f"{median([s['exported_s'] for s in samples]):.1f} s, verified at {median([s['verified_s'] for s in samples]):.1f} s "
            "(medians); peak RSS = the fan_out function process"
        ),
        samples={"runs": samples},
    )


def seconds_row(case: str, **figures: Any) -> Row:
    """A row of this scenario: a time in seconds, lower is better."""
    return Row(scenario="fanout", case=case, unit="s", higher_is_better=False, **figures)


def growth_exponent(sizes: list[int], seconds: list[float]) -> float:
    """Least-squares slope of log(seconds) over log(tables): 1 is linear, < 1 better than linear."""
    xs = [math.log(n) for n in sizes]
    ys = [math.log(max(s, 1e-6)) for s in seconds]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def growth_row(what: str, sizes: list[int], rows: list[Row], runs: int) -> Row:
    medians = [r.offsite or math.nan for r in rows]
    k = growth_exponent(sizes, medians)
    return Row(
        scenario="fanout",
        case=f"{what}: growth {sizes[0]}→{sizes[-1]} tables (exponent)",
        unit="x",
        offsite=k,
        target=f"<= {MAX_GROWTH_EXPONENT} (linear or better)",
        passed=k <= MAX_GROWTH_EXPONENT,
        runs=runs,
        notes="slope of log(time) over log(tables); 1.0 = linear",
        samples={"sizes": sizes, "medians_s": medians},
    )


def run(quick: bool, stack: Any = None, runs: int = MIN_RUNS) -> list[dict[str, Any]]:
    if stack is None:
        raise RuntimeError("the fan-out benchmark needs the local stack (bench/run.py starts it)")
    runs = max(runs, 1)
    sizes = list(SIZES_QUICK if quick else SIZES_FULL)
    pipeline_sizes = list(PIPELINE_SIZES_QUICK if quick else SIZES_FULL)
    fan_out_pid = next(c.pid for c in stack.components if c.name == "fan_out")
    topics = ["table-exports", "gcs-notifications", "verify-results"]
    with stack_env(stack):
        for tables in sorted({*sizes, *pipeline_sizes, 10}):
            seed_dataset(stack.project, tables)
        code_rows = [measure_code_path(stack, tables, runs) for tables in sizes]
        with Watch(stack, topics) as watch, RssSampler(fan_out_pid, 0.02) as sampler:
            pipeline_rows = [measure_pipeline(watch, sampler, tables, runs) for tables in pipeline_sizes]
    rows = [*code_rows, growth_row("fan_out code path", sizes, code_rows, runs)]
    rows += [*pipeline_rows, growth_row("pipeline", pipeline_sizes, pipeline_rows, runs)]
    return [r.to_dict() for r in rows]
