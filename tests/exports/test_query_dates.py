"""``{date}`` in a query export, run on the stack's BigQuery (bqemulator behind the BigQuery front).

Seed 003 writes ``WHERE DATE(created_at) = '{date}'``: the quoted form must select the day against
a DATE column and against a STRING column holding ISO dates, unquoted ``{date}`` is a DATE, and
``events_{date}`` names the day's shard of a date-sharded table. Each query is exported with
EXPORT DATA through the production warehouse path and the exported rows are read back.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import time
import uuid
from collections.abc import Iterator

import pytest
from google.cloud import bigquery

from shared.gcp import gcs
from shared.gcp.bigquery import BigQueryWarehouse, DatedQuery, ExportJob
from tests.exports.conftest import ExportsKit

DAY = dt.date(2025, 1, 8)
DAYS = [dt.date(2025, 1, 7), DAY, dt.date(2025, 1, 9)]


@pytest.fixture
def dated_tables(exports_env: ExportsKit) -> Iterator[str]:
    """A dataset with ``products`` (TIMESTAMP created_at, DATE day, STRING day_text: 3 rows per day)
    and the date-sharded ``events_20250107`` … ``events_20250109`` (one row naming its shard)."""
    bq = exports_env.bigquery()
    dataset = f"{exports_env.stack.project}.dates_{uuid.uuid4().hex[:8]}"
    bq.create_dataset(dataset)
    schema = [
        bigquery.SchemaField("id", "INT64"),
        bigquery.SchemaField("created_at", "TIMESTAMP"),
        bigquery.SchemaField("day", "DATE"),
        bigquery.SchemaField("day_text", "STRING"),
    ]
    products = bq.create_table(bigquery.Table(f"{dataset}.products", schema=schema))
    rows = [
        {"id": i, "created_at": f"{d.isoformat()}T{10 + k}:00:00Z", "day": d.isoformat(), "day_text": d.isoformat()}
        for i, (d, k) in enumerate((d, k) for d in DAYS for k in range(3))
    ]
    assert bq.insert_rows_json(products, rows) == []
    for d in DAYS:
        shard = bq.create_table(bigquery.Table(f"{dataset}.events_{d:%Y%m%d}", schema=schema[:1]))
        assert bq.insert_rows_json(shard, [{"id": int(f"{d:%Y%m%d}")}]) == []
    yield dataset
    bq.delete_dataset(dataset, delete_contents=True)


def _export_ids(kit: ExportsKit, sql: str) -> list[int]:
    """Export ``sql`` for DAY as a query export would (EXPORT DATA, CSV) and return the exported ids."""
    prefix = f"test-dates/{uuid.uuid4().hex[:8]}/"
    job = ExportJob(
        job_id=f"test_dates_{uuid.uuid4().hex[:12]}",
        source=DatedQuery("product_data", sql, DAY),
        bucket=kit.bucket,
        prefix=prefix,
        file_pattern="Product_20250108-*.csv.gz",
        format="CSV",
        deadline=time.monotonic() + 120,
    )
    result = BigQueryWarehouse().export(job)
    ids: list[int] = []
    for obj in gcs.list_prefix(kit.bucket, prefix):
        text = gzip.decompress(gcs.read_bytes(kit.bucket, obj.name) or b"").decode()
        ids += [int(row["id"]) for row in csv.DictReader(io.StringIO(text, newline=""))]
    assert result.row_count == len(ids)
    return sorted(ids)


def test_seed_003s_quoted_date_selects_the_day_of_a_timestamp(exports_env: ExportsKit, dated_tables: str) -> None:
    sql = f"SELECT * FROM `{dated_tables}.products` WHERE DATE(created_at) = '{{date}}'"
    assert _export_ids(exports_env, sql) == [3, 4, 5]


def test_quoted_date_compares_as_the_date_with_a_date_column(exports_env: ExportsKit, dated_tables: str) -> None:
    sql = f"SELECT id FROM `{dated_tables}.products` WHERE day = '{{date}}'"
    assert _export_ids(exports_env, sql) == [3, 4, 5]


def test_quoted_date_compares_as_text_with_a_string_column(exports_env: ExportsKit, dated_tables: str) -> None:
    # Before: '{date}' became the text '@run_date' here, and the export was silently empty.
    sql = f"SELECT id FROM `{dated_tables}.products` WHERE day_text = '{{date}}'"
    assert _export_ids(exports_env, sql) == [3, 4, 5]


def test_unquoted_date_is_a_date_parameter(exports_env: ExportsKit, dated_tables: str) -> None:
    sql = f"SELECT id FROM `{dated_tables}.products` WHERE day = {{date}} OR day = DATE_SUB({{date}}, INTERVAL 1 DAY)"
    assert _export_ids(exports_env, sql) == [0, 1, 2, 3, 4, 5]


def test_date_in_a_table_name_picks_the_days_shard(exports_env: ExportsKit, dated_tables: str) -> None:
    assert _export_ids(exports_env, f"SELECT id FROM `{dated_tables}.events_{{date}}`") == [20250108]
    dataset = dated_tables.split(".", 1)[1]
    assert _export_ids(exports_env, f"SELECT id FROM {dataset}.events_{{date}} WHERE '{{date}}' > ''") == [20250108]
