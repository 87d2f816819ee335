"""The production warehouse path against the stack's BigQuery front: CSV values that broke the old
local exporter (a lone CR split rows, '' was written like NULL) come back row for row."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import time
import uuid

import pytest
from google.cloud import bigquery

from shared.gcp import gcs
from shared.gcp.bigquery import BigQueryWarehouse, DatedQuery, ExportJob, TableRef
from tests.exports.conftest import ExportsKit

TEXTS = ["a\rb", "\r", "x\r\ry", "end\r", "\rstart", 'q"\r"', "c,\rd", "", None, "plain"]


@pytest.fixture
def edge_table(exports_env: ExportsKit):
    bq = exports_env.bigquery()
    dataset = f"edges_{uuid.uuid4().hex[:8]}"
    bq.create_dataset(f"{exports_env.stack.project}.{dataset}")
    table_id = f"{exports_env.stack.project}.{dataset}.lone_cr"
    schema = [
        bigquery.SchemaField("id", "INT64"),
        bigquery.SchemaField("s", "STRING"),
        bigquery.SchemaField("day", "DATE"),
    ]
    table = bq.create_table(bigquery.Table(table_id, schema=schema))
    rows = [{"id": i, "s": TEXTS[i % len(TEXTS)], "day": "2025-01-08" if i % 2 else "2025-01-09"} for i in range(1000)]
    assert bq.insert_rows_json(table, rows) == []
    yield TableRef(exports_env.stack.project, dataset, "lone_cr"), rows
    bq.delete_dataset(f"{exports_env.stack.project}.{dataset}", delete_contents=True)


def _csv_rows(kit: ExportsKit, prefix: str) -> list[list[str]]:
    rows: list[list[str]] = []
    for obj in gcs.list_prefix(kit.bucket, prefix):
        text = gzip.decompress(gcs.read_bytes(kit.bucket, obj.name) or b"").decode()
        rows.extend(list(csv.reader(io.StringIO(text, newline=""))))
    return rows


def _job(kit: ExportsKit, source, prefix: str) -> ExportJob:
    return ExportJob(
        job_id=f"test_edges_{uuid.uuid4().hex[:12]}",
        source=source,
        bucket=kit.bucket,
        prefix=prefix,
        file_pattern="edges-*.csv.gz",
        format="CSV",
        deadline=time.monotonic() + 120,
    )


def test_table_export_of_a_thousand_rows_with_lone_crs(exports_env: ExportsKit, edge_table) -> None:
    kit, (ref, rows) = exports_env, edge_table
    prefix = f"test-edges/{uuid.uuid4().hex[:8]}/"
    result = BigQueryWarehouse().export(_job(kit, ref, prefix))
    assert result.row_count == 1000 and result.file_count == 1
    read = _csv_rows(kit, prefix)
    assert read[0] == ["id", "s", "day"] and len(read) == 1001
    assert sorted(read[1:], key=lambda r: int(r[0])) == [
        [str(r["id"]), r["s"] or "", r["day"]] for r in rows
    ]  # the csv module reads '' and NULL alike; the raw text keeps them apart:
    raw = gzip.decompress(gcs.read_bytes(kit.bucket, prefix + "edges-000000000000.csv.gz") or b"").decode()
    assert '\n7,"",2025-01-08\n' in raw and "\n8,,2025-01-09\n" in raw


def test_query_export_with_a_date_parameter_keeps_lone_crs(exports_env: ExportsKit, edge_table) -> None:
    kit, (ref, rows) = exports_env, edge_table
    prefix = f"test-edges/{uuid.uuid4().hex[:8]}/"
    query = DatedQuery("edges", f"SELECT id, s FROM {ref.sql} WHERE day = {{date}}", dt.date(2025, 1, 8))
    result = BigQueryWarehouse().export(_job(kit, query, prefix))
    assert result.row_count == 500 and result.file_count == 1
    assert [f["name"] for f in result.schema] == ["id", "s"]
    read = _csv_rows(kit, prefix)
    assert sorted(read[1:], key=lambda r: int(r[0])) == [[str(r["id"]), r["s"] or ""] for r in rows if r["id"] % 2]
