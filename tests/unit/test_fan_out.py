"""fan_out's pure logic: run ids, scheduled dates, config checks, table selection, planning."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from shared.config import Config
from shared.errors import RejectedInput
from shared.gcp.bigquery import TableInfo
from shared.message_fields import RUN_ID_RE
from shared.messages import ExportRequest
from shared.stages.fan_out import (
    check_request,
    derive_run_id,
    destinations,
    new_run_id,
    parse_publish_time,
    plan,
    scheduled_date,
    select_tables,
)
from tests.unit.config_files import load

CONFIG = """
project: p1
bucket: my-bucket
export_prefix: exports/
destinations:
  sftp:
    acme: {host: h, username: u, password: x, known_hosts: "h ssh-ed25519 AAAA"}
    beta: {host: h, username: u, password: x, known_hosts: "h ssh-ed25519 AAAA"}
datasets:
  - name: sales
    time_zone: America/New_York
    tables: {exclude: [scratch]}
  - name: ml
    format: AVRO
    destinations: ["sftp:beta"]
    tables: {include: [model, features, gone]}
exports:
  - name: daily
    sql: "SELECT * FROM `p1.sales.orders` WHERE d = {date}"
    time_zone: Asia/Tokyo
    destinations: ["sftp:acme"]
    file_name: "Daily_{YYYYMMDD}-*.csv.gz"
"""


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load(tmp_path, CONFIG)


class Listing:
    """What BigQuery lists for a dataset (the only warehouse call fan_out makes)."""

    def __init__(self, **datasets: list[tuple[str, str]]) -> None:
        self.project = "p1"
        self.datasets = datasets

    def list_tables(self, dataset: str) -> list[TableInfo]:
        return [TableInfo(name, kind) for name, kind in self.datasets[dataset]]


SALES = Listing(
    sales=[("orders", "TABLE"), ("customers", "TABLE"), ("by_day", "VIEW"), ("ext", "EXTERNAL"), ("scratch", "TABLE")],
    ml=[("model", "TABLE"), ("features", "TABLE"), ("other", "TABLE"), ("mv", "MATERIALIZED_VIEW")],
)


def test_derived_run_id_is_stable_and_depends_on_publish_time() -> None:
    a = derive_run_id("17", "2025-01-08T02:00:00.123Z")
    assert a == derive_run_id("17", "2025-01-08T02:00:00.123Z")
    assert a != derive_run_id("17", "2025-01-09T02:00:00.123Z") and a != derive_run_id("18", "2025-01-08T02:00:00.123Z")
    assert len(a) == 13 and a.startswith("r") and RUN_ID_RE.match(a)
    assert RUN_ID_RE.match(new_run_id()) and new_run_id() != new_run_id()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-01-08T02:00:00Z", dt.datetime(2025, 1, 8, 2, tzinfo=dt.UTC)),
        ("2025-01-08T02:00:00.123Z", dt.datetime(2025, 1, 8, 2, 0, 0, 123000, tzinfo=dt.UTC)),
        ("2025-01-08T02:00:00.123456789Z", dt.datetime(2025, 1, 8, 2, 0, 0, 123456, tzinfo=dt.UTC)),
        ("2025-01-08T02:00:00+01:00", dt.datetime(2025, 1, 8, 1, tzinfo=dt.UTC)),
        ("2025-01-08T02:00:00", dt.datetime(2025, 1, 8, 2, tzinfo=dt.UTC)),
    ],
)
def test_publish_time_parsing(text: str, expected: dt.datetime) -> None:
    assert parse_publish_time(text) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "2025-13-08T02:00:00Z", "2025-01-08 02:00:00Z"])
def test_unparseable_publish_time(text: str) -> None:
    assert parse_publish_time(text) is None


def test_scheduled_date_is_the_publish_date_in_the_time_zone() -> None:
    assert scheduled_date("2025-01-08T02:00:00Z", "UTC") == dt.date(2025, 1, 8)
    assert scheduled_date("2025-01-08T02:00:00Z", "America/New_York") == dt.date(2025, 1, 7)
    assert scheduled_date("2025-01-08T16:00:00Z", "Asia/Tokyo") == dt.date(2025, 1, 9)
    before = dt.datetime.now(dt.UTC).date()
    fallback = scheduled_date("garbage", "UTC")  # an unreadable publish time falls back to now
    assert fallback in (before, dt.datetime.now(dt.UTC).date())


def test_check_request_names_known_values(config) -> None:
    with pytest.raises(RejectedInput, match=r"dataset: 'hr' is not a configured dataset \(configured: sales, ml\)"):
        check_request(ExportRequest(dataset="hr"), config)
    with pytest.raises(RejectedInput, match=r"export: 'weekly' is not a configured export \(configured: daily\)"):
        check_request(ExportRequest(export="weekly"), config)
    with pytest.raises(
        RejectedInput, match=r"destinations: 'box' is not a configured destination \(configured: sftp:acme, sftp:beta\)"
    ):
        check_request(ExportRequest(dataset="sales", destinations=("box",)), config)


def test_destination_defaults(config) -> None:
    assert destinations(ExportRequest(dataset="sales"), config) == ("sftp:acme", "sftp:beta")  # every destination
    assert destinations(ExportRequest(dataset="ml"), config) == ("sftp:beta",)  # the dataset's
    assert destinations(ExportRequest(export="daily"), config) == ("sftp:acme",)
    assert destinations(ExportRequest(dataset="ml", destinations=("sftp:acme",)), config) == ("sftp:acme",)


def test_default_tables_skip_views_external_and_excluded(config) -> None:
    assert select_tables(ExportRequest(dataset="sales"), config, SALES) == ["orders", "customers"]


def test_include_list_limits_default_tables(config) -> None:
    assert select_tables(ExportRequest(dataset="ml"), config, SALES) == ["model", "features"]


def test_explicit_tables(config) -> None:
    assert select_tables(ExportRequest(dataset="sales", tables=("customers",)), config, SALES) == ["customers"]
    # an explicit request may name a table outside the include list ...
    assert select_tables(ExportRequest(dataset="ml", tables=("other",)), config, SALES) == ["other"]
    # ... but never an excluded one
    assert select_tables(ExportRequest(dataset="sales", tables=("orders", "scratch")), config, SALES) == ["orders"]
    with pytest.raises(RejectedInput, match=r"nothing to export from p1.sales; skipped: scratch \(excluded\)"):
        select_tables(ExportRequest(dataset="sales", tables=("scratch",)), config, SALES)


def test_explicit_unknown_or_view_is_rejected(config) -> None:
    with pytest.raises(
        RejectedInput, match=r"tables: 'nope' is not a table of p1.sales \(tables: orders, customers, scratch\)"
    ):
        select_tables(ExportRequest(dataset="sales", tables=("orders", "nope")), config, SALES)
    with pytest.raises(RejectedInput, match="tables: 'by_day' is a VIEW; only tables can be exported"):
        select_tables(ExportRequest(dataset="sales", tables=("by_day",)), config, SALES)


def test_empty_dataset_is_rejected(config) -> None:
    with pytest.raises(RejectedInput, match="nothing to export from p1.sales; the dataset has no tables"):
        select_tables(ExportRequest(dataset="sales"), config, Listing(sales=[]))


def test_plan_dataset_mode(config) -> None:
    request = ExportRequest.from_json(json.dumps({"dataset": "ml", "format": "csv"}))
    exports = plan(request, config, SALES, run_id="r1", publish_time="2025-01-08T02:00:00Z")
    assert [e.source.table for e in exports] == ["model", "features"]
    first = exports[0]
    assert first.format == "CSV" and first.date == dt.date(2025, 1, 8) and first.destinations == ("sftp:beta",)
    assert first.prefix == "exports/ml/model/20250108/r1/"  # export_prefix's trailing slash is not doubled
    assert first.file_name == "model_{YYYYMMDD}-*.csv.gz"
    assert first.source.project == "p1" and first.run_id == "r1"


def test_plan_query_mode(config) -> None:
    exports = plan(ExportRequest(export="daily"), config, None, run_id="r2", publish_time="2025-01-08T16:00:00Z")
    (task,) = exports
    assert task.date == dt.date(2025, 1, 9)  # Tokyo
    assert task.prefix == "exports/_queries/daily/20250109/r2/"
    assert task.file_name == "Daily_{YYYYMMDD}-*.csv.gz" and task.format == "CSV"
    (avro,) = plan(
        ExportRequest(export="daily", format="AVRO", date=dt.date(2024, 2, 29)),
        config,
        None,
        run_id="r3",
        publish_time="",
    )
    assert avro.file_name == "Daily_{YYYYMMDD}-*.avro" and avro.date == dt.date(2024, 2, 29)
