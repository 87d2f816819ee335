"""The front keeps BigQuery's ``requirePartitionFilter``, which bqemulator drops: tables.get shows
it, a query (job, jobs.query, dry run, EXPORT DATA) without a filter on the partitioning column
fails 400 invalidQuery as BigQuery's does, one with it runs, and an extract job needs none."""

from __future__ import annotations

import uuid

import pytest
from google.api_core import exceptions
from google.cloud import bigquery
from google.cloud.bigquery import SchemaField as F

from tests.bqfront.conftest import FrontKit

REFUSED = "without a filter over column\\(s\\) 'day' that can be used for partition elimination"


def _required_table(front: FrontKit) -> str:
    table_id = front.table(f"parted_{uuid.uuid4().hex[:8]}")
    table = bigquery.Table(table_id, schema=[F("day", "DATE"), F("v", "INT64")])
    table.time_partitioning = bigquery.TimePartitioning(field="day")
    table.require_partition_filter = True
    front.bq.create_table(table)
    assert front.bq.insert_rows_json(table_id, [{"day": "2025-01-07", "v": 1}, {"day": None, "v": 2}]) == []
    return table_id


def test_a_query_needs_a_filter_on_the_partitioning_column(front: FrontKit) -> None:
    table_id = _required_table(front)
    assert front.bq.get_table(table_id).require_partition_filter is True
    dry = bigquery.QueryJobConfig(dry_run=True)
    for sql in (f"SELECT COUNT(*) FROM `{table_id}`", f"SELECT COUNT(*) FROM `{table_id}` WHERE v = 1"):
        with pytest.raises(exceptions.BadRequest, match=REFUSED):
            list(front.bq.query(sql).result())
        with pytest.raises(exceptions.BadRequest, match=REFUSED):
            front.bq.query(sql, job_config=dry)
        with pytest.raises(exceptions.BadRequest, match=REFUSED):  # jobs.query
            list(front.bq.query_and_wait(sql))
    export = f"EXPORT DATA OPTIONS(uri='gs://{front.bucket}/{front.prefix()}x-*.csv', format='CSV') AS SELECT * FROM `{table_id}`"
    with pytest.raises(exceptions.BadRequest, match=REFUSED):
        front.bq.query(export).result(timeout=60)

    every_row = f"SELECT COUNT(*) FROM `{table_id}` WHERE (day IS NULL OR day IS NOT NULL)"
    assert list(front.bq.query(every_row).result())[0][0] == 2


def test_an_extract_needs_no_filter_and_other_tables_none_either(front: FrontKit) -> None:
    table_id = _required_table(front)
    prefix = front.prefix()
    front.bq.extract_table(table_id, f"gs://{front.bucket}/{prefix}p-*.csv").result(timeout=60)
    assert len(front.objects(prefix)) == 1
    assert list(front.bq.query(f"SELECT COUNT(*) FROM `{front.table('flat')}`").result())[0][0] > 0

    table = front.bq.get_table(table_id)
    table.require_partition_filter = False  # a patch of the flag alone
    front.bq.update_table(table, ["require_partition_filter"])
    assert list(front.bq.query(f"SELECT COUNT(*) FROM `{table_id}`").result())[0][0] == 2
