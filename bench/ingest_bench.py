"""Ingest: an initial sync of N SQLite rows into the local BigQuery vs a plain Parquet load of the same rows.

- **offsite**: ``shared.ingest.engine.sync`` on a fresh dataset each run — the lease, the
  schema, batched reads from one SQLite snapshot, values checked, one column hashed, Parquet
  files loaded into a staging table, the MERGE and the watermark in one transaction, cleanup.
- **peer**: the floor for the same rows in the same stack: the whole table read at once with
  ``SELECT *``, one Arrow table, one Parquet file, one load job straight into the target (no
  checks, no hashing, no staging, no MERGE, no state; memory grows with the table).

Peak RSS is over each child's baseline: the ingest holds one batch (``batch_rows``) and one
Parquet writer at a time, so its peak stays flat as N grows while the peer's grows with N.

Incremental (issue 15: "10 k changed rows in a 5 M-row table cost time proportional to the
change, not to the table"): the same ``updated_at``-indexed table at two sizes (500 k and 5 M;
quick: 20 k and 100 k), each synced once, then ``CHANGED`` rows spread over it updated and
synced again, several times. Two rows: the incremental sync of the large table against the
same change in the small one (ratio ≈ 1: proportional to the change; ≈ size ratio: to the
table), and against the large table's initial sync. Both use the configured load path (auto:
the Storage Write API).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from bench.children import mark_start, python_child, run_child
from bench.common import MB, MIN_RUNS, Row, median
from bench.stack_watch import on_stack

ROWS_FULL = 1_000_000
ROWS_QUICK = 100_000
INCREMENTAL_FULL = (500_000, 5_000_000, 10_000)  # small table, large table, rows changed per run
INCREMENTAL_QUICK = (20_000, 100_000, 2_000)
SCHEMA = (
    "CREATE TABLE events (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, kind TEXT, amount REAL, "
    "api_key TEXT, payload TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)"
)


def make_db(path: Path, rows: int, *, cursor_index: bool = False) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(SCHEMA)
    if cursor_index:  # what docs/ingest.md asks of an updated_at cursor: the incremental read is a range scan
        conn.execute("CREATE INDEX events_updated_at ON events (updated_at)")
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


def synced(project: str, db: str, dataset: str) -> tuple[Any, float]:
    """One ``sync`` of the bench table into ``dataset`` (one column hashed): (its outcome, seconds)."""
    from shared.config.ingest import IngestSettings
    from shared.gcp import clients
    from shared.ingest.engine import IngestRun, sync

    settings = IngestSettings.model_validate(
        {
            "sqlite_path": db,
            "dataset": dataset,
            "hash_key": "bench",
            "tables": {"events": {"hashed_columns": ["api_key"]}},
        }
    )
    started = time.perf_counter()
    (outcome,) = sync(IngestRun(settings, clients.bigquery_client(), project))
    return outcome, time.perf_counter() - started


def offsite_ingest(project: str, db: str, runs: int, rows: int) -> dict[str, Any]:
    """Child: ``runs`` initial syncs, each into a fresh dataset."""
    from shared.gcp import clients

    client = clients.bigquery_client()
    seconds = []
    mark_start()
    for k in range(runs):
        dataset = f"bench_ingest_{int(time.time())}_{k}"
        outcome, took = synced(project, db, dataset)
        seconds.append(took)
        if outcome.status != "synced" or outcome.rows_read != rows:
            raise RuntimeError(f"ingest run {k}: {outcome}")
        client.delete_dataset(f"{project}.{dataset}", delete_contents=True, not_found_ok=True)
    return {"runs": seconds, "load_path": outcome.load_path}


def change_rows(db: str, rows: int, changed: int, k: int) -> None:
    """Update ``changed`` rows spread over the table; their ``updated_at`` moves past every earlier one."""
    step = max(1, rows // changed)
    ids = [1 + (k + j * step) % rows for j in range(changed)]
    conn = sqlite3.connect(db)
    with conn:
        conn.executemany(
            "UPDATE events SET amount = amount + 1, updated_at = ? WHERE id = ?",
            [
                (f"2025-03-{1 + k % 28:02d} {j // 3600 % 24:02d}:{j // 60 % 60:02d}:{j % 60:02d}", i)
                for j, i in enumerate(ids)
            ],
        )
    conn.close()


def _latest_update(db: str) -> str:
    conn = sqlite3.connect(db)
    try:
        return str(conn.execute("SELECT MAX(updated_at) FROM events").fetchone()[0])
    finally:
        conn.close()


def _rows_updated_at(db: str, when: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM events WHERE updated_at = ?", (when,)).fetchone()[0])
    finally:
        conn.close()


def offsite_incremental(project: str, db: str, runs: int, rows: int, changed: int) -> dict[str, Any]:
    """Child: one initial sync of the table, then ``runs`` times: change ``changed`` rows, sync (timed)."""
    from shared.gcp import clients

    dataset = f"bench_incr_{rows}_{int(time.time())}"
    first, initial = synced(project, db, dataset)
    if first.status != "synced" or first.rows_read != rows:
        raise RuntimeError(f"initial sync of {rows}: {first}")
    seconds = []
    for k in range(runs):
        watermark = _latest_update(db)
        change_rows(db, rows, changed, k)
        # rows still at the last sync's watermark (its own second) are read again: the cursor is
        # inclusive, the MERGE by key makes it harmless (~200 such rows in the 5 M-row table)
        expected = changed + _rows_updated_at(db, watermark)
        outcome, took = synced(project, db, dataset)
        seconds.append(took)
        if outcome.status != "synced" or outcome.rows_read != expected:
            raise RuntimeError(f"incremental run {k} of {rows}: expected {expected} rows read, got {outcome}")
    clients.bigquery_client().delete_dataset(f"{project}.{dataset}", delete_contents=True, not_found_ok=True)
    return {"initial": initial, "runs": seconds, "load_path": first.load_path}


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


def incremental(quick: bool, stack: Any, runs: int) -> list[dict[str, Any]]:
    small, large, changed = INCREMENTAL_QUICK if quick else INCREMENTAL_FULL
    results = {}
    with on_stack(stack, "ingest-incremental") as (tmp, env):
        for rows in (small, large):
            db = Path(tmp) / f"app-{rows}.db"
            make_db(db, rows, cursor_index=True)
            args = {"project": stack.project, "db": str(db), "runs": runs, "rows": rows, "changed": changed}
            results[rows] = run_child(python_child("ingest_bench:offsite_incremental", **args), env=env).result
    big, little = results[large], results[small]
    incr_big, incr_little = median(big["runs"]), median(little["runs"])
    what = f"{changed / 1e3:g} k changed rows in {large / 1e6:g} M"
    common = {"scenario": "ingest", "unit": "s", "higher_is_better": False, "runs": runs}
    samples = {"large_s": big["runs"], "small_s": little["runs"], "initial_large_s": big["initial"]}
    return [
        Row(
            case=f"incremental sync, {what} vs in {small / 1e6:g} M (≈1: proportional to the change)",
            offsite=incr_big,
            peer=incr_little,
            peer_name=f"same change, {small / 1e6:g} M-row table",
            notes=f"load path {big['load_path']}; table {large // small}x larger",
            samples=samples,
            **common,
        ).to_dict(),
        Row(
            case=f"incremental sync, {what} vs its initial sync",
            offsite=incr_big,
            peer=big["initial"],
            peer_name=f"initial sync of the {large / 1e6:g} M rows",
            notes=f"{changed / large:.1%} of the rows changed",
            samples=samples,
            **common,
        ).to_dict(),
    ]


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
        notes=f"peer's RSS +{peer.rss_over_baseline / MB:.0f} MB; ingest ({ours.result['load_path']}): checks, HMAC, staging, MERGE, watermark",
        samples={
            "offsite_s": ours.result["runs"],
            "peer_s": peer.result["runs"],
            "peer_rss_mb": peer.rss_over_baseline / MB,
        },
    )
    return [row.to_dict(), *incremental(quick, stack, runs)]
