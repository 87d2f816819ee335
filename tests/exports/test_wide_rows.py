"""Rows wider than bqemulator's default gRPC message cap still export (devstack lifts the cap)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from google.cloud import bigquery

from devstack.state import StackInfo
from shared.gcp import clients

ROOT = Path(__file__).resolve().parents[2]


def test_two_kilobyte_rows_export_through_the_functions(stack_env: StackInfo) -> None:
    bq = clients.bigquery_client()
    bq.create_dataset(f"{stack_env.project}.sales", exists_ok=True)
    table_id = f"{stack_env.project}.sales.wide_rows"
    bq.delete_table(table_id, not_found_ok=True)
    schema = [bigquery.SchemaField("id", "INT64"), bigquery.SchemaField("blob", "STRING")]
    bq.create_table(bigquery.Table(table_id, schema=schema))
    rows = pa.table({"id": pa.array(range(20_000), pa.int64()), "blob": pa.array(["x" * 2000] * 20_000)})
    buffer = io.BytesIO()
    pq.write_table(rows, buffer)
    buffer.seek(0)
    config = bigquery.LoadJobConfig(source_format=bigquery.SourceFormat.PARQUET)
    bq.load_table_from_file(buffer, table_id, size=None, job_config=config).result(timeout=120)

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "offsite.cli",
            "run",
            "--dataset",
            "sales",
            "--tables",
            "wide_rows",
            "--until",
            "exported",
            "--timeout",
            "180",
        ],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sales.wide_rows: 20000 rows" in done.stdout
