"""A table that requires a partition filter (``require_partition_filter``) is exported whole and
proven: its extract needs no filter, and the row count and fingerprint that follow it read every
partition through a filter BigQuery accepts (shared/gcp/partitions.py). Before, both queries
failed ("Cannot query over table … without a filter over column(s) …") and so did the export, every
night. The local BigQuery front refuses such queries as BigQuery does (devstack/bqfront/partition_filter.py)."""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pyarrow.parquet as pq
import pytest
from google.api_core import exceptions
from google.cloud import bigquery
from google.cloud.bigquery import SchemaField as F

from shared.gcp import gcs
from shared.gcp.bigquery import BigQueryWarehouse, ExportJob, TableRef
from tests.exports.conftest import ExportsKit, object_bytes

ROWS = [
    {"id": 1, "day": "2025-01-06", "bucket": 3},
    {"id": 2, "day": "2025-01-07", "bucket": 7},
    {"id": 3, "day": None, "bucket": None},  # the NULL partition counts too
    {"id": 4, "day": "2025-01-07", "bucket": 250},  # out of the integer range: __UNPARTITIONED__
]


@pytest.fixture
def dataset(exports_env: ExportsKit) -> Iterator[str]:
    bq = exports_env.bigquery()
    name = f"parted_{uuid.uuid4().hex[:8]}"  # not `sales`: other tests list its tables
    bq.create_dataset(f"{bq.project}.{name}")
    yield name
    bq.delete_dataset(f"{bq.project}.{name}", delete_contents=True, not_found_ok=True)


def _create(bq: Any, table_id: str, partitioning: str) -> None:
    table = bigquery.Table(table_id, schema=[F("id", "INT64"), F("day", "DATE"), F("bucket", "INT64")])
    if partitioning == "day column":
        table.time_partitioning = bigquery.TimePartitioning(field="day")
    elif partitioning == "ingestion time":
        table.time_partitioning = bigquery.TimePartitioning()
    else:
        table.range_partitioning = bigquery.RangePartitioning(
            field="bucket", range_=bigquery.PartitionRange(start=0, end=100, interval=10)
        )
    table.require_partition_filter = True
    bq.create_table(table)
    assert bq.insert_rows_json(table_id, ROWS) == []


@pytest.mark.parametrize("partitioning", ["day column", "ingestion time", "integer range"])
def test_a_table_that_requires_a_partition_filter_is_exported_counted_and_fingerprinted(
    exports_env: ExportsKit, dataset: str, partitioning: str
) -> None:
    kit = exports_env
    bq = kit.bigquery()
    table_id = f"{bq.project}.{dataset}.events"
    _create(bq, table_id, partitioning)
    with pytest.raises(exceptions.BadRequest, match="without a filter over column"):  # as BigQuery answers
        list(bq.query(f"SELECT COUNT(*) FROM `{table_id}`").result())

    # the production export path (export_table's, without its configured-dataset check)
    prefix = f"exports/{dataset}/{uuid.uuid4().hex[:8]}/"
    job = ExportJob(
        f"offsite_t{uuid.uuid4().hex[:12]}_export",
        TableRef(bq.project, dataset, "events"),
        kit.bucket,
        prefix,
        "events-*.parquet",
        "PARQUET",
        time.monotonic() + 60,
    )
    result = BigQueryWarehouse(bq).export(job)
    assert result.row_count == len(ROWS)
    assert result.fingerprint is not None and result.fingerprint["row_count"] == len(ROWS)
    assert result.fingerprint["columns"]["day"]["nulls"] == 1
    files = [o.name for o in gcs.list_prefix(kit.bucket, prefix)]
    assert sum(pq.read_metadata(io.BytesIO(object_bytes(kit, f))).num_rows for f in files) == len(ROWS)
