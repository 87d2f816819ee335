"""Export: a 2 M-row table → Parquet files in GCS through the local stack, rows/s, vs plain pyarrow.

offsite: ``shared.stages.export.run_export`` — export_table's own steps (``_run.json``, the extract
job, the manifest) — with ``shared.gcp.bigquery.warehouse`` against the stack's BigQuery front
(devstack/bqfront): the front reads the rows from bqemulator over its Storage Read API (gRPC,
Arrow), writes SNAPPY Parquet shards of the stack's ``shard_size_bytes`` and uploads them to
fake-gcs-server; the function polls the job, counts the rows, then writes the manifest. It writes to a bucket of its
own that has no notifications, so no upload function wakes up during the measurement.

Memory is the BigQuery front's (the process that reads the rows and streams each shard into a
resumable upload), sampled while the export runs: target ≤ baseline + 128 MB, and ≥ 0.5× the
peer's rows/s.

Peer (the floor of the local path): ``pyarrow.parquet.write_table`` of the same rows, already in
memory, to a local file, same compression — no reading, no upload, no hashing.

A third, unranked figure explains the gap: reading the rows alone from bqemulator the way the
front does. Each side runs in its own child process (all its runs in a row; peak RSS
over that child's baseline). The table has the sample ``orders`` shape (devstack.sample_data):
2 M rows, 200 k with ``--quick``.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

from bench.children import RssSampler, mark_start, python_child, run_child
from bench.common import MB, MIN_RUNS, Row, all_of, median, within_rss
from bench.stack_watch import on_stack

ROWS_FULL = 2_000_000
ROWS_QUICK = 200_000
DATASET = "bench_export"
TARGET_RATIO = 0.5  # of pyarrow writing the same rows from memory
FRONT_RSS_LIMIT_MB = 128.0
BUCKET = "offsite-bench-export"  # no -event.bucket for it: exports here wake no function


def table_name(rows: int) -> str:
    return f"orders_{rows}"


# ---- children ------------------------------------------------------------------------------------


def offsite_export(config_path: str, project: str, rows: int, run_ids: list[str]) -> dict[str, Any]:
    """Child: export_table's steps for one table through the stack's BigQuery front, once per run id."""
    from shared.config_load import load_config
    from shared.gcp.bigquery import warehouse
    from shared.layout import RunFolder, default_file_name
    from shared.messages import Source, TableExport
    from shared.stages.export import run_export

    config = load_config(config_path).model_copy(update={"bucket": BUCKET})
    wh = warehouse()
    source = Source(mode="table", project=project, dataset=DATASET, table=table_name(rows))
    date = dt.date.today()
    seconds, manifest = [], None
    mark_start()
    for run_id in run_ids:
        task = TableExport(
            run_id=run_id,
            date=date,
            source=source,
            format="PARQUET",
            destinations=("sftp:local",),
            prefix=RunFolder(config.export_prefix.strip("/"), source, date, run_id).prefix,
            file_name=default_file_name(source.table or "", "PARQUET"),
        )
        started = time.perf_counter()
        manifest = run_export(task, config, wh, time.monotonic() + 3600)
        seconds.append(time.perf_counter() - started)
        if manifest.row_count != rows:
            raise RuntimeError(f"the manifest of {run_id} counts {manifest.row_count} rows, the table has {rows}")
    assert manifest is not None
    return {"runs": seconds, "files": len(manifest.files), "bytes": sum(f.size for f in manifest.files)}


def pyarrow_write(parquet_path: str, out_dir: str, runs: int) -> dict[str, Any]:
    """Child: the same rows, already in memory, written by pyarrow alone."""
    import pyarrow.parquet as pq

    table = pq.read_table(parquet_path)
    out = Path(out_dir) / "out.parquet"
    seconds = []
    mark_start()
    for _ in range(runs):
        started = time.perf_counter()
        pq.write_table(table, out, compression="snappy")
        seconds.append(time.perf_counter() - started)
    return {"runs": seconds, "bytes": out.stat().st_size}


def read_only(project: str, rows: int, runs: int) -> dict[str, Any]:
    """Child: only the reading half of the BigQuery front (bqemulator Storage Read API → Arrow)."""
    import os

    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    from devstack.bqfront.source import Reader
    from devstack.state import StackInfo

    info = StackInfo.from_json(Path(os.environ["OFFSITE_STACK"]).read_text())
    client = bigquery.Client(
        project=project,
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=info.bqemulator_url),
    )
    reader = Reader(client, info.bigquery_grpc)
    ref = {"projectId": project, "datasetId": DATASET, "tableId": table_name(rows)}
    seconds = []
    mark_start()
    for _ in range(runs):
        started = time.perf_counter()
        count = sum(b.num_rows for b in reader.table(ref, project).batches)  # the front's reader
        seconds.append(time.perf_counter() - started)
        if count != rows:
            raise RuntimeError(f"read {count} rows, the table has {rows}")
    return {"runs": seconds}


# ---- set-up and the scenario ---------------------------------------------------------------------


def seed(project: str, rows: int, parquet_path: Path) -> None:
    """The table in bqemulator and the same rows as a local Parquet file (for the peer)."""
    import pyarrow.parquet as pq

    from devstack.sample_data import ORDERS_SCHEMA, load_table, orders_table
    from shared.gcp import clients

    data = orders_table(rows)
    pq.write_table(data, parquet_path, compression="snappy")
    client = clients.bigquery_client()
    client.create_dataset(f"{project}.{DATASET}", exists_ok=True)
    load_table(client, f"{project}.{DATASET}.{table_name(rows)}", ORDERS_SCHEMA, data)
    storage = clients.storage_client()
    if storage.lookup_bucket(BUCKET) is None:
        storage.create_bucket(BUCKET)


def run(quick: bool, stack: Any = None, runs: int = MIN_RUNS) -> list[dict[str, Any]]:
    """Each side runs in one child process, ``runs`` times in a row; medians of those runs."""
    rows, runs = (ROWS_QUICK if quick else ROWS_FULL), max(1, runs)
    with on_stack(stack, "export") as (tmp, env):
        parquet = Path(tmp) / "rows.parquet"
        started = time.perf_counter()
        seed(stack.project, rows, parquet)
        print(f"   seeded {rows:,} rows in {time.perf_counter() - started:.0f} s", flush=True)
        run_ids = [f"bx{rows}-{int(time.time())}-{k}" for k in range(runs)]
        args = {"config_path": str(stack.config_path), "project": stack.project, "rows": rows, "run_ids": run_ids}
        front = RssSampler(_listener_pid(stack.bigquery_url))
        front_baseline = front.sample()
        with front:
            ours = run_child(python_child("export_bench:offsite_export", **args), env=env)
        front_rss_mb = (front.peak - front_baseline) / MB
        floor = run_child(python_child("export_bench:pyarrow_write", parquet_path=str(parquet), out_dir=tmp, runs=runs))
        reads = run_child(python_child("export_bench:read_only", project=stack.project, rows=rows, runs=runs), env=env)
    rate = median([rows / s for s in ours.result["runs"]])
    read_rate = median([rows / s for s in reads.result["runs"]])
    print(f"   offsite {ours.result['runs']} s, pyarrow {floor.result['runs']} s, read {reads.result['runs']} s")
    row = Row(
        scenario="export",
        case=f"{rows / 1e6:g} M rows → Parquet in GCS (local stack: BigQuery front)",
        unit="rows/s",
        offsite=rate,
        peer=median([rows / s for s in floor.result["runs"]]),
        peer_name="pyarrow write_table",
        peak_rss_mb=front_rss_mb,
        rss_limit_mb=FRONT_RSS_LIMIT_MB,
        target=f">= {TARGET_RATIO:g}x pyarrow, BigQuery front RSS <= baseline + {FRONT_RSS_LIMIT_MB:g} MB",
        runs=runs,
        notes=(
            f"peak RSS is the BigQuery front's (it writes the shards); the function's own: "
            f"+{ours.rss_over_baseline / MB:.0f} MB; "
            f"{ours.result['files']} files, {ours.result['bytes'] / MB:.0f} MB; reading alone from bqemulator: "
            f"{read_rate:,.0f} rows/s; pyarrow's file {floor.result['bytes'] / MB:.0f} MB, "
            f"its RSS +{floor.rss_over_baseline / MB:.0f} MB"
        ),
        samples={
            "offsite_s": ours.result["runs"],
            "pyarrow_s": floor.result["runs"],
            "read_only_s": reads.result["runs"],
            "read_only_rows_s": read_rate,
            "pyarrow_rss_mb": floor.rss_over_baseline / MB,
            "files": ours.result["files"],
            "bytes": ours.result["bytes"],
        },
    )
    row.passed = all_of(
        row.ratio is not None and row.ratio >= TARGET_RATIO, within_rss(front_rss_mb, FRONT_RSS_LIMIT_MB)
    )
    return [row.to_dict()]


def _listener_pid(url: str) -> int:
    """The pid of the process listening on ``url``'s port (the stack's BigQuery front)."""
    import psutil

    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return int(conn.pid)
    raise RuntimeError(f"nothing listens on {url}")
