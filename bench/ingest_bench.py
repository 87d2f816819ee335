"""Ingest: an initial sync of N SQLite rows into the local BigQuery vs a plain Parquet load of the same rows.

- **offsite**: ``shared.ingest.engine.sync`` on a fresh dataset each run — the lease, the
  schema, batched reads from one SQLite snapshot, values checked, one column hashed, Parquet
  files loaded into a staging table, the MERGE and the watermark in one transaction, cleanup.
- **peer**: the floor for the same rows in the same stack: the whole table read at once with
  ``SELECT *``, one Arrow table, one Parquet file, one load job straight into the target (no
  checks, no hashing, no staging, no MERGE, no state; memory grows with the table).

Peak RSS is over each child's baseline: the ingest holds one batch (``batch_rows``) and one
Parquet writer at a time, so its peak stays flat as N grows while the peer's grows with N.
Not measured here: the incremental case (10 k changed rows of 5 M) — see docs/ingest.md.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from bench.common import MB, MIN_RUNS, Row, mark_start, median, python_child, run_child
from bench.stack_watch import on_stack

ROWS_FULL = 1_000_000
ROWS_QUICK = 100_000
SCHEMA = (
    "CREATE TABLE events (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, kind TEXT, amount REAL, "
    "api_key TEXT, payload TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)"
)


def make_db(path: Path, rows: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(SCHEMA)
    batch = 50_000
    with conn:
        for start in range(0, rows, batch):
            conn.executemany(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        i,
                        i % 5000,
                        ("click", "view", "buy")[i % 3],
                        i * 0.25,
                        f"sk-{i:08d}",
                        f"event {i} with some text to make the row realistic",
                        f"2025-01-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:{i // 60 % 60:02d}",
                        f"2025-02-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:{i // 60 % 60:02d}",
                    )
                    for i in range(start + 1, min(rows, start + batch) + 1)
                ],
            )
    conn.close()


def offsite_ingest(project: str, db: str, runs: int, rows: int) -> dict[str, Any]:
    """Child: ``runs`` initial syncs, each into a fresh dataset."""
    from shared.config.ingest import IngestSettings
    from shared.gcp import clients
    from shared.ingest.engine import IngestRun, sync

    client = clients.bigquery_client()
    seconds = []
    mark_start()
    for k in range(runs):
        dataset = f"bench_ingest_{int(time.time())}_{k}"
        settings = IngestSettings.model_validate(
            {
                "sqlite_path": db,
                "dataset": dataset,
                "hash_key": "bench",
                "tables": {"events": {"hashed_columns": ["api_key"]}},
            }
        )
        started = time.perf_counter()
        (outcome,) = sync(IngestRun(settings, client, project))
        seconds.append(time.perf_counter() - started)
        if outcome.status != "synced" or outcome.rows_read != rows:
            raise RuntimeError(f"ingest run {k}: {outcome}")
        client.delete_dataset(f"{project}.{dataset}", delete_contents=True, not_found_ok=True)
    return {"runs": seconds}


def plain_load(project: str, db: str, runs: int, rows: int, tmp: str) -> dict[str, Any]:
    """Child: the whole table → one Arrow table → one Parquet file → one load job, ``runs`` times."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from google.cloud import bigquery

    from shared.gcp import clients

    client = clients.bigquery_client()
    seconds = []
    mark_start()
    for k in range(runs):
        dataset = f"bench_plain_{int(time.time())}_{k}"
        client.create_dataset(f"{project}.{dataset}")
        started = time.perf_counter()
        conn = sqlite3.connect(db)
        cur = conn.execute("SELECT * FROM events")
        names = [d[0] for d in cur.description]
        data = cur.fetchall()
        table = pa.table({n: [r[i] for r in data] for i, n in enumerate(names)})
        path = Path(tmp) / f"plain-{k}.parquet"
        pq.write_table(table, path, compression="snappy")
        kinds = {pa.int64(): "INT64", pa.float64(): "FLOAT64", pa.string(): "STRING"}
        schema = [bigquery.SchemaField(f.name, kinds[f.type]) for f in table.schema]
        client.create_table(bigquery.Table(f"{project}.{dataset}.events", schema=schema))
        with path.open("rb") as handle:
            config = bigquery.LoadJobConfig(source_format="PARQUET", schema=schema)
            client.load_table_from_file(handle, f"{project}.{dataset}.events", job_config=config, size=None).result()
        seconds.append(time.perf_counter() - started)
        del data, table
        client.delete_dataset(f"{project}.{dataset}", delete_contents=True, not_found_ok=True)
    return {"runs": seconds}


def run(quick: bool, stack: Any = None, runs: int = MIN_RUNS) -> list[dict[str, Any]]:
    rows, runs = (ROWS_QUICK if quick else ROWS_FULL), max(1, runs)
    with on_stack(stack, "ingest") as (tmp, env):
        db = Path(tmp) / "app.db"
        make_db(db, rows)
        args = {"project": stack.project, "db": str(db), "runs": runs, "rows": rows}
        ours = run_child(python_child("ingest_bench:offsite_ingest", **args), env=env)
        peer = run_child(python_child("ingest_bench:plain_load", tmp=tmp, **args), env=env)
    row = Row(
        scenario="ingest",
        case=f"{rows / 1e6:g} M SQLite rows → BigQuery, initial sync (local stack)",
        unit="rows/s",
        offsite=median([rows / s for s in ours.result["runs"]]),
        peer=median([rows / s for s in peer.result["runs"]]),
        peer_name="SELECT * → one Parquet load job",
        peak_rss_mb=ours.rss_over_baseline / MB,
        runs=runs,
        notes=f"peer's RSS +{peer.rss_over_baseline / MB:.0f} MB; ingest: checks, HMAC, staging, MERGE, watermark",
        samples={
            "offsite_s": ours.result["runs"],
            "peer_s": peer.result["runs"],
            "peer_rss_mb": peer.rss_over_baseline / MB,
        },
    )
    return [row.to_dict()]
