"""The BigQuery side of the warehouse against bqemulator: listing, schemas, counts, job re-attachment.

The cloud export itself (extract jobs to gs://) cannot run here (bqemulator answers 500);
what it is built from — job lookup, start-once, waiting, failure reasons — is exercised
with query jobs, which the emulator runs.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest

from shared.errors import PermanentError
from shared.gcp.bigquery import BigQueryWarehouse, DatedQuery, TableInfo, TableRef
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


def test_schema_and_counts(wh: BigQueryWarehouse, exports_env: ExportsKit) -> None:
    project = exports_env.stack.project
    schema = wh.table_schema(TableRef(project, "sales", "customers"))
    address = next(f for f in schema if f["name"] == "address")
    assert address["type"] == "RECORD" and [f["name"] for f in address["fields"]] == ["street", "city", "zip", "geo"]
    assert next(f for f in schema if f["name"] == "tags")["mode"] == "REPEATED"
    assert wh.count_rows(TableRef(project, "sales", "orders")) == 200_000
    daily = DatedQuery(
        "orders_daily", f"SELECT * FROM `{project}.sales.orders` WHERE order_date = {{date}}", dt.date(2025, 1, 8)
    )
    expected = exports_env.source_count("orders", where_date=dt.date(2025, 1, 8))
    assert wh.count_rows(daily) == expected > 0


def test_a_job_is_started_once_and_re_attached_later(wh: BigQueryWarehouse, exports_env: ExportsKit) -> None:
    job_id = f"offsite_test_{uuid.uuid4().hex[:10]}_export"
    started: list[str] = []

    def start(jid: str):
        started.append(jid)
        return wh.client.query("SELECT 1 AS one", job_id=jid, job_retry=None)

    first = wh.attach_or_start(job_id, start, None, time.monotonic() + 60, "test")
    assert first.state == "DONE" and started == [job_id]

    def must_not_start(jid: str):
        raise AssertionError(f"a second job {jid} was started")

    again = wh.attach_or_start(job_id, must_not_start, None, time.monotonic() + 60, "test")
    assert again.job_id == job_id and again.state == "DONE"


def test_a_failed_job_is_permanent_with_bigquerys_reason(wh: BigQueryWarehouse, exports_env: ExportsKit) -> None:
    job_id = f"offsite_test_{uuid.uuid4().hex[:10]}_export"
    sql = f"SELECT * FROM `{exports_env.stack.project}.sales.ghost`"

    def start(jid: str):
        return wh.client.query(sql, job_id=jid, job_retry=None)  # inserted; fails while running

    with pytest.raises(PermanentError, match=rf"BigQuery job {job_id} for test failed: notFound: .*ghost"):
        wh.attach_or_start(job_id, start, None, time.monotonic() + 60, "test")
    # A redelivery finds the failed job and reports the same, without starting another.
    with pytest.raises(PermanentError, match="notFound"):
        wh.attach_or_start(job_id, lambda jid: pytest.fail("started again"), None, time.monotonic() + 60, "test")
