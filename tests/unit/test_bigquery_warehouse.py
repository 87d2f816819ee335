"""shared/gcp/bigquery.py without a server: job ids, query parameters, extract settings, error mapping."""

from __future__ import annotations

import datetime as dt

import pytest
from google.api_core import exceptions as gexc
from google.cloud import bigquery

from shared.errors import PermanentError, TransientError
from shared.gcp.bigquery import (
    DatedQuery,
    ExportJob,
    TableInfo,
    TableRef,
    job_id_for,
    warehouse,
)
from shared.gcp.bq_jobs import mapped_errors
from shared.gcp.export_config import export_data_sql, extract_job_config
from shared.messages import Source

ORDERS = Source(mode="table", project="p", dataset="sales", table="orders")


def test_job_ids_are_deterministic_valid_and_distinct() -> None:
    a = job_id_for("r1", ORDERS)
    assert a == job_id_for("r1", ORDERS)
    assert a.startswith("offsite_r1_sales_orders_") and a.endswith("_export")
    others = {
        job_id_for("r2", ORDERS),
        job_id_for("r1", Source(mode="table", project="p", dataset="sales", table="customers")),
        job_id_for("r1", Source(mode="table", project="q", dataset="sales", table="orders")),
        job_id_for("r1", Source(mode="query", project="p", export="orders")),
        job_id_for("r1", ORDERS, "query"),
    }
    assert a not in others and len(others) == 5
    long = job_id_for("r" * 63, Source(mode="table", project="p", dataset="d" * 1000, table="t" * 1000))
    assert len(long) <= 1024 and all(c.isalnum() or c in "_-" for c in long)


def test_dated_query_uses_a_typed_parameter() -> None:
    q = DatedQuery("daily", "SELECT * FROM t WHERE a = {date} OR b = {date}", dt.date(2025, 1, 8))
    sql, params = q.parameterized()
    assert sql == "SELECT * FROM t WHERE a = @run_date OR b = @run_date"
    assert params == [bigquery.ScalarQueryParameter("run_date", "DATE", dt.date(2025, 1, 8))]
    assert "2025" not in sql  # the date never becomes SQL text
    with pytest.raises(PermanentError, match="expected a {date} placeholder"):
        DatedQuery("x", "SELECT 1", dt.date(2025, 1, 8)).parameterized()


def test_a_snapshot_query_reads_no_date() -> None:
    assert DatedQuery("x", "SELECT 1;", dt.date(2025, 1, 8), snapshot=True).parameterized() == ("SELECT 1", [])
    with pytest.raises(PermanentError, match=r"expected no \{date\} \(snapshot: true\)"):
        DatedQuery("x", "SELECT {date}", dt.date(2025, 1, 8), snapshot=True).parameterized()


def test_table_ref_sql_quotes_and_refuses_backticks() -> None:
    assert TableRef("my-proj", "sales", "orders").sql == "`my-proj.sales.orders`"
    with pytest.raises(PermanentError, match="backtick"):
        _ = TableRef("p`; DROP", "sales", "orders").sql


def test_only_tables_are_exportable() -> None:
    assert TableInfo("t", "TABLE").exportable
    assert not any(TableInfo("t", kind).exportable for kind in ("VIEW", "MATERIALIZED_VIEW", "EXTERNAL"))


@pytest.mark.parametrize(
    ("fmt", "compression", "header", "avro_logical"),
    [
        ("PARQUET", "SNAPPY", None, None),
        ("AVRO", "DEFLATE", None, True),
        ("CSV", "GZIP", True, None),
        ("NEWLINE_DELIMITED_JSON", "GZIP", None, None),
    ],
)
def test_extract_settings(fmt: str, compression: str, header, avro_logical) -> None:
    config = extract_job_config(fmt)
    assert config.destination_format == fmt and config.compression == compression
    assert config.print_header == header and config.use_avro_logical_types == avro_logical


def test_destination_uri() -> None:
    job = ExportJob(
        "j", TableRef("p", "d", "t"), "bkt", "exports/d/t/20250108/r1/", "t_20250108-*.parquet", "PARQUET", 0.0
    )
    assert job.destination_uri == "gs://bkt/exports/d/t/20250108/r1/t_20250108-*.parquet"


@pytest.mark.parametrize(
    ("exc", "kind", "needle"),
    [
        (gexc.NotFound("Not found: Table p:d.t"), PermanentError, "not found: Not found: Table p:d.t"),
        (gexc.Forbidden("Access Denied", errors=[{"reason": "accessDenied"}]), PermanentError, "access denied"),
        (
            gexc.Forbidden("Exceeded rate limits", errors=[{"reason": "rateLimitExceeded"}]),
            TransientError,
            "rateLimitExceeded",
        ),
        (
            gexc.BadRequest("Syntax error", errors=[{"reason": "invalidQuery"}]),
            PermanentError,
            "invalidQuery: Syntax error",
        ),
        (gexc.ServiceUnavailable("later"), TransientError, "ServiceUnavailable"),
        (gexc.InternalServerError("oops"), TransientError, "InternalServerError"),
        (ConnectionError("reset"), TransientError, "reset"),
    ],
)
def test_error_mapping(exc: Exception, kind: type, needle: str) -> None:
    with pytest.raises(kind) as info, mapped_errors("doing x"):
        raise exc
    assert type(info.value) is kind and "doing x" in str(info.value) and needle in str(info.value)


def test_one_warehouse_whatever_the_environment(monkeypatch) -> None:
    """No environment switch selects another code path: the local stack runs BigQueryWarehouse too."""
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "p")
    monkeypatch.setenv("OFFSITE_BIGQUERY_ENDPOINT", "http://127.0.0.1:9")  # never contacted: clients connect lazily
    from shared.gcp import clients

    clients.reset()
    for value in ("local", "bigquery", "duckdb"):
        monkeypatch.setenv("OFFSITE_WAREHOUSE", value)  # the retired switch: ignored
        assert type(warehouse()).__name__ == "BigQueryWarehouse"
    clients.reset()


@pytest.mark.parametrize(
    ("fmt", "options"),
    [
        ("PARQUET", "format='PARQUET', compression='SNAPPY', overwrite=true"),
        ("AVRO", "format='AVRO', compression='DEFLATE', overwrite=true, use_avro_logical_types=true"),
        ("CSV", "format='CSV', compression='GZIP', overwrite=true, header=true"),
        ("NEWLINE_DELIMITED_JSON", "format='JSON', compression='GZIP', overwrite=true"),
    ],
)
def test_export_data_statement(fmt: str, options: str) -> None:
    sql = export_data_sql("gs://b/exports/x/t_20250108-*.ext", fmt, "SELECT * FROM t WHERE d = @run_date")
    assert sql == (
        f"EXPORT DATA OPTIONS(uri='gs://b/exports/x/t_20250108-*.ext', {options}) AS\n"
        "SELECT * FROM t WHERE d = @run_date"
    )


def test_export_data_refuses_a_uri_that_would_break_the_statement() -> None:
    with pytest.raises(PermanentError, match="quote or backslash"):
        export_data_sql("gs://b/it's-*.csv", "CSV", "SELECT 1")
