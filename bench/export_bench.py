"""Export: a 2 M-row table → Parquet files in GCS through the local stack, rows/s, vs plain pyarrow.

Two rows, both against the same peer:

- **the extract job alone** (the target's subject): one ``jobs.insert`` extract job sent with
  google-cloud-bigquery to the stack's BigQuery front (devstack/bqfront), polled every 50 ms
  until DONE (``job.result()`` backs off from 1 s by 1.5×, which rounded the first
  measurements up to its next poll): the front
  reads the rows from bqemulator over its Storage Read API (gRPC, Arrow), writes SNAPPY Parquet
  shards (row groups of 65,536 rows) into spool files on local disk as the rows arrive, and
  sends each finished shard to fake-gcs-server in one request while it writes the next. Memory
  is the front's (the process that writes the shards), sampled while the jobs run: target ≤
  baseline + 128 MB, and ≥ 0.5× the peer's rows/s.
- **export_table's steps** (reported): ``shared.stages.export.run_export`` with
  ``shared.gcp.bigquery.warehouse`` — ``_run.json``, the same extract job, then the export's
  fingerprint (one query job over every row: ``FARM_FINGERPRINT(TO_JSON_STRING(c))`` per column,
  in bqemulator), the row count and the manifest. In the cloud both jobs run inside BigQuery.

Both write to a bucket of their own that has no notifications, so no upload function wakes up
during the measurement.

Peer (the floor of the local path): ``pyarrow.parquet.write_table`` of the same rows, already in
memory, to a local file, same compression — no reading, no upload, no hashing.

Two further, unranked figures explain the gap: reading the rows alone from bqemulator the way
the front does, and sending pyarrow's file alone to fake-gcs-server the way the front sends a
shard (spooled, then one request). The front overlaps the two, so the slower is its floor. Each side runs in its own child process (all its runs in a row; peak RSS
over that child's baseline). The table has the sample ``orders`` shape (devstack.sample_data):
2 M rows, 200 k with ``--quick``.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.children import RssSampler, mark_start, python_child, run_child
from bench.common import MB, MIN_RUNS, Row, all_of, create_buckets, median, own_buckets, within_rss
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

    config = load_config(config_path).model_copy(update=own_buckets(BUCKET))
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


def extract_only(project: str, rows: int, runs: int) -> dict[str, Any]:
    """Child: the extract job alone, as export_table starts it, sent to the stack's BigQuery front."""
    from google.cloud import bigquery

    from shared.gcp import clients

    client = clients.bigquery_client()
    config = bigquery.ExtractJobConfig(destination_format="PARQUET", compression="SNAPPY")
    source = f"{project}.{DATASET}.{table_name(rows)}"
    seconds, files = [], 0
    mark_start()
    for k in range(runs):
        uri = f"gs://{BUCKET}/extract-only/{int(time.time())}-{k}/part-*.parquet"
        started = time.perf_counter()
        job = client.extract_table(source, uri, job_config=config)
        while job.state != "DONE":  # polled every 50 ms: job.result()'s back-off (1 s, 1.5×) would be measured
            time.sleep(0.05)
            job.reload()
        seconds.append(time.perf_counter() - started)
        if job.error_result:
            raise RuntimeError(f"extract job {job.job_id} failed: {job.error_result}")
        files = int((job.destination_uri_file_counts or [0])[0])
    return {"runs": seconds, "files": files}


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


def upload_only(parquet_path: str, runs: int) -> dict[str, Any]:
    """Child: only the sending half of the BigQuery front: pyarrow's file, written in pieces into
    the front's spool and sent as the front sends a shard (one request, CRC32C checked), to
    fake-gcs-server (its floor on this stack)."""
    from devstack.bqfront.runner import ShardSender
    from shared.gcp import clients

    data = Path(parquet_path).read_bytes()
    storage = clients.storage_client()
    seconds = []
    mark_start()
    for k in range(runs):
        started = time.perf_counter()
        sender = ShardSender(storage, BUCKET, "application/octet-stream")
        shard = sender.open(f"upload-only/{int(time.time())}-{k}.parquet")
        for offset in range(0, len(data), 64 * 1024):  # pieces, as pyarrow writes them
            shard.write(data[offset : offset + 64 * 1024])
        shard.close()
        sender.finish()
        seconds.append(time.perf_counter() - started)
    return {"runs": seconds, "bytes": len(data)}


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
    create_buckets(clients.storage_client(), BUCKET)


def _with_front_rss(stack: Any, argv: list[str], env: dict[str, str]) -> tuple[Any, float]:
    """Run a child while sampling the BigQuery front; (the child, the front's peak over its baseline, MB)."""
    front = RssSampler(_listener_pid(stack.bigquery_url))
    baseline = front.sample()
    with front:
        child = run_child(argv, env=env)
    return child, (front.peak - baseline) / MB


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
        extract, extract_rss = _with_front_rss(
            stack, python_child("export_bench:extract_only", project=stack.project, rows=rows, runs=runs), env
        )
        ours, ours_rss = _with_front_rss(stack, python_child("export_bench:offsite_export", **args), env)
        floor = run_child(python_child("export_bench:pyarrow_write", parquet_path=str(parquet), out_dir=tmp, runs=runs))
        reads = run_child(python_child("export_bench:read_only", project=stack.project, rows=rows, runs=runs), env=env)
        sends = run_child(python_child("export_bench:upload_only", parquet_path=str(parquet), runs=runs), env=env)
    return _rows(rows, runs, _Measured(extract, extract_rss, ours, ours_rss, floor, reads, sends))


@dataclass(frozen=True)
class _Measured:
    """The children of one export scenario run, and the BigQuery front's RSS growth during two of them."""

    extract: Any
    extract_rss: float
    ours: Any
    ours_rss: float
    floor: Any
    reads: Any
    sends: Any


def _rows(rows: int, runs: int, m: _Measured) -> list[dict[str, Any]]:
    """The scenario's two rows: the extract job alone against pyarrow (judged), and export_table's steps."""
    pyarrow_rate = median([rows / s for s in m.floor.result["runs"]])
    read_rate = median([rows / s for s in m.reads.result["runs"]])
    send_s = median(m.sends.result["runs"])
    print(
        f"   extract {m.extract.result['runs']} s, export_table {m.ours.result['runs']} s, "
        f"pyarrow {m.floor.result['runs']} s, read {m.reads.result['runs']} s"
    )
    samples = {
        "extract_s": m.extract.result["runs"],
        "offsite_s": m.ours.result["runs"],
        "pyarrow_s": m.floor.result["runs"],
        "read_only_s": m.reads.result["runs"],
        "read_only_rows_s": read_rate,
        "upload_only_s": m.sends.result["runs"],
        "pyarrow_rss_mb": m.floor.rss_over_baseline / MB,
        "front_rss_export_table_mb": m.ours_rss,
        "files": m.ours.result["files"],
        "bytes": m.ours.result["bytes"],
    }
    common = {"scenario": "export", "unit": "rows/s", "peer": pyarrow_rate, "peer_name": "pyarrow write_table"}
    front_row = Row(
        **common,
        case=f"{rows / 1e6:g} M rows → Parquet in GCS: the extract job alone (BigQuery front)",
        offsite=median([rows / s for s in m.extract.result["runs"]]),
        peak_rss_mb=m.extract_rss,
        rss_limit_mb=FRONT_RSS_LIMIT_MB,
        target=f">= {TARGET_RATIO:g}x pyarrow, BigQuery front RSS <= baseline + {FRONT_RSS_LIMIT_MB:g} MB",
        runs=runs,
        notes=(
            f"peak RSS is the BigQuery front's (it writes the shards); {m.extract.result['files']} files; "
            f"reading alone from bqemulator: {read_rate:,.0f} rows/s ({rows / read_rate:.1f} s); "
            f"sending pyarrow's file alone to fake-gcs-server as the front sends a shard: {send_s:.1f} s "
            f"({m.sends.result['bytes'] / MB / send_s:.0f} MB/s); pyarrow's file "
            f"{m.floor.result['bytes'] / MB:.0f} MB, its RSS +{m.floor.rss_over_baseline / MB:.0f} MB"
        ),
        samples=samples,
    )
    front_row.passed = all_of(
        front_row.ratio is not None and front_row.ratio >= TARGET_RATIO,
        within_rss(m.extract_rss, FRONT_RSS_LIMIT_MB),
    )
    steps_row = Row(
        **common,
        case=f"{rows / 1e6:g} M rows: export_table's steps (extract + fingerprint job + manifest)",
        offsite=median([rows / s for s in m.ours.result["runs"]]),
        peak_rss_mb=m.ours_rss,
        target="none (reported)",
        runs=runs,
        notes=(
            f"peak RSS is the BigQuery front's while export_table ran; the function's own: "
            f"+{m.ours.rss_over_baseline / MB:.0f} MB; {m.ours.result['files']} files, "
            f"{m.ours.result['bytes'] / MB:.0f} MB; the fingerprint is a query over every row in bqemulator"
        ),
        samples=samples,
    )
    return [front_row.to_dict(), steps_row.to_dict()]


def _listener_pid(url: str) -> int:
    """The pid of the process listening on ``url``'s port (the stack's BigQuery front)."""
    import psutil

    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return int(conn.pid)
    raise RuntimeError(f"nothing listens on {url}")
