"""The BigQuery side of the warehouse against bqemulator: listing, schemas, job re-attachment.

What export jobs are built from — insert under a deterministic id, re-attach on 409, waiting,
failure reasons — is exercised here with query jobs; the extract and EXPORT DATA jobs themselves
run in the stack's BigQuery front (tests/bqfront, tests/exports/test_pipeline.py).
"""

from __future__ import annotations

import time
import uuid

import pytest

from shared.errors import PermanentError
from shared.gcp.bigquery import BigQueryWarehouse, TableInfo, TableRef
from shared.gcp.bq_jobs import attempt_id, get_job
from tests.exports.conftest import ExportsKit


@pytest.fixture
def wh(exports_env: ExportsKit) -> BigQueryWarehouse:
    return BigQueryWarehouse()


def test_list_tables_with_types(wh: BigQueryWarehouse, exports_env: ExportsKit) -> None:
    tables = wh.list_tables("sales")
    assert TableInfo("orders", "TABLE") in tables and TableInfo("orders_by_day", "VIEW") in tables
    assert [t.name for t in tables] == sorted(t.name for t in tables)
    with pytest.raises(PermanentError, match="listing tables of offsite-local.nope: not found"):
        wh.list_tables("nope")


def test_schema_of_nested_and_repeated_fields(wh: BigQueryWarehouse, exports_env: ExportsKit) -> None:
    """(Row counts are an export's: tests/exports/test_fingerprint.py, test_partition_filter.py.)"""
    project = exports_env.stack.project
    schema = wh.table_schema(TableRef(project, "sales", "customers"))
    address = next(f for f in schema if f["name"] == "address")
    assert address["type"] == "RECORD" and [f["name"] for f in address["fields"]] == ["street", "city", "zip", "geo"]
    assert next(f for f in schema if f["name"] == "tags")["mode"] == "REPEATED"


def test_a_job_is_started_once_and_re_attached_later(wh: BigQueryWarehouse, exports_env: ExportsKit) -> None:
    job_id = f"offsite_test_{uuid.uuid4().hex[:10]}_export"
    inserts: list[str] = []

    def start(jid: str):
        inserts.append(jid)
        return wh.client.query("SELECT 1 AS one", job_id=jid, job_retry=None)

    first = wh.attach_or_start(job_id, start, None, time.monotonic() + 60, "test")
    assert first.state == "DONE" and inserts == [job_id]
    # A redelivery inserts the same id first; BigQuery answers 409 and keeps its one job, which
    # the redelivery re-attaches to (same creation time: not a second job).
    again = wh.attach_or_start(job_id, start, None, time.monotonic() + 60, "test")
    assert inserts == [job_id, job_id]
    assert again.job_id == job_id and again.state == "DONE" and again.created == first.created
    # Without a start (the job's completion event): looked up only.
    looked_up = wh.attach_or_start(job_id, None, None, time.monotonic() + 60, "test")
    assert looked_up.created == first.created and inserts == [job_id, job_id]
    assert get_job(wh.client, attempt_id(job_id, 1), None) is None  # no retry successor either


def test_a_failed_job_is_permanent_with_bigquerys_reason(wh: BigQueryWarehouse, exports_env: ExportsKit) -> None:
    job_id = f"offsite_test_{uuid.uuid4().hex[:10]}_export"
    sql = f"SELECT * FROM `{exports_env.stack.project}.sales.ghost`"

    def start(jid: str):
        return wh.client.query(sql, job_id=jid, job_retry=None)  # inserted; fails while running

    with pytest.raises(PermanentError, match=rf"BigQuery job {job_id} for test failed: notFound: .*ghost"):
        wh.attach_or_start(job_id, start, None, time.monotonic() + 60, "test")
    failed = get_job(wh.client, job_id, None)
    # A redelivery's insert is refused (409); it finds the failed job and reports the same,
    # without another job (notFound is not a transient reason: no retry successor).
    with pytest.raises(PermanentError, match="notFound"):
        wh.attach_or_start(job_id, start, None, time.monotonic() + 60, "test")
    assert get_job(wh.client, job_id, None).created == failed.created
    assert get_job(wh.client, attempt_id(job_id, 1), None) is None
