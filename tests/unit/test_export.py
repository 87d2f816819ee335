"""export_table's pure checks: what a table export may ask for, file patterns, the time budget."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from shared.config import Config
from shared.errors import ConfigError, RejectedInput
from shared.layout import RunFolder, default_file_name
from shared.messages import Source, TableExport
from shared.stages.export import (
    BUDGET_ENV,
    DEFAULT_BUDGET_S,
    check_task,
    file_pattern,
    run_folder,
    time_budget_s,
)
from shared.stages.export_records import shard_regex
from tests.unit.config_files import load

CONFIG = """
project: p1
bucket: my-bucket
destinations:
  sftp:
    acme: {host: h, username: u, password: x, known_hosts: "h ssh-ed25519 AAAA"}
datasets:
  - name: sales
exports:
  - name: daily
    sql: "SELECT 1 AS x FROM UNNEST([{date}])"
    file_name: "Daily_{YYYYMMDD}-*.csv.gz"
"""


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load(tmp_path, CONFIG)


def table_task(**changes) -> TableExport:
    source = Source(mode="table", project="p1", dataset="sales", table="orders")
    date = dt.date(2025, 1, 8)
    task = RunFolder("exports", source, date, "r1").export_task(
        "PARQUET", ("sftp:acme",), default_file_name("orders", "PARQUET")
    )
    return task.model_copy(update=changes)


def test_a_task_fan_out_makes_passes(config) -> None:
    check_task(table_task(), config)
    query = Source(mode="query", project="p1", export="daily")
    check_task(
        table_task(source=query, prefix="exports/_queries/daily/20250108/r1/", file_name="Daily_{YYYYMMDD}-*.csv.gz"),
        config,
    )


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        (
            {"source": Source(mode="table", project="p2", dataset="sales", table="orders")},
            "source.project: 'p2' is not the configured project 'p1'",
        ),
        (
            {"source": Source(mode="table", project="p1", dataset="hr", table="orders")},
            "source.dataset: 'hr' is not a configured dataset",
        ),
        (
            {"source": Source(mode="query", project="p1", export="weekly")},
            "source.export: 'weekly' is not a configured export",
        ),
        (
            {"prefix": "exports/sales/orders/20250108/r2/"},
            "prefix: 'exports/sales/orders/20250108/r2/' is not this run's folder",
        ),
        ({"prefix": "elsewhere/"}, "is not this run's folder (expected 'exports/sales/orders/20250108/r1/')"),
        ({"file_name": "orders.parquet"}, "must contain exactly one '*'"),
        ({"file_name": "a/*.parquet"}, "no '/'"),
        ({"file_name": "_*.json"}, "not start with '_'"),
        ({"destinations": ("box",)}, "destinations: 'box' is not a configured destination (configured: sftp:acme)"),
    ],
)
def test_tasks_fan_out_could_not_make_are_rejected(config, changes: dict, needle: str) -> None:
    with pytest.raises(RejectedInput) as info:
        check_task(table_task(**changes), config)
    assert needle in str(info.value)


def test_file_pattern_and_shard_regex() -> None:
    task = table_task()
    assert file_pattern(task) == "orders_20250108-*.parquet"
    regex = shard_regex(file_pattern(task))
    assert regex.match("orders_20250108-000000000000.parquet")
    assert regex.match("orders_20250108-000000000012.parquet")
    for other in (
        "orders_20250108-0.parquet",
        "orders_20250108-000000000000.parquet.tmp",
        "xorders_20250108-000000000000.parquet",
    ):
        assert not regex.match(other), other
    query = table_task(source=Source(mode="query", project="p1", export="daily"), file_name="{export}.{date}-*.csv.gz")
    assert file_pattern(query) == "daily.2025-01-08-*.csv.gz"
    assert shard_regex("a.b-*.csv.gz").match("a.b-000000000001.csv.gz") and not shard_regex("a.b-*.csv.gz").match(
        "aXb-000000000001.csv.gz"
    )


def test_run_folder_ignores_trailing_slash_of_the_prefix(config) -> None:
    assert (
        run_folder(table_task(), config.model_copy(update={"export_prefix": "exports/"})).prefix
        == "exports/sales/orders/20250108/r1/"
    )


def test_time_budget(monkeypatch) -> None:
    monkeypatch.delenv(BUDGET_ENV, raising=False)
    assert time_budget_s() == DEFAULT_BUDGET_S < 540  # well under the function's timeout
    monkeypatch.setenv(BUDGET_ENV, "12.5")
    assert time_budget_s() == 12.5
    for bad in ("soon", "0", "-3"):
        monkeypatch.setenv(BUDGET_ENV, bad)
        with pytest.raises(ConfigError, match=BUDGET_ENV):
            time_budget_s()


def test_only_export_and_fingerprint_jobs_are_the_exporters_to_read() -> None:
    from shared.gcp.fingerprint_job import is_export_step

    assert is_export_step("offsite_r1_sales_orders_0a1b2c3d_export")
    assert is_export_step("offsite_r1_sales_orders_0a1b2c3d_fingerprint_retry2")
    assert not is_export_step("offsite_restore_r1_0a1b2c3d")
    assert not is_export_step("offsite_r1_sales_orders_0a1b2c3d_export_copy")
