"""ExportRequest and TableExport parsing (shared/messages.py): accepted shapes and field-named errors."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from shared.errors import RejectedInput
from shared.message_fields import MAX_MESSAGE_BYTES
from shared.messages import ExportRequest, Source, TableExport


def req(obj) -> ExportRequest:
    return ExportRequest.from_json(json.dumps(obj))


def test_dataset_mode_minimal() -> None:
    r = req({"dataset": "sales"})
    assert r == ExportRequest(dataset="sales")
    assert r.tables is None and r.export is None and r.date is None and r.run_id is None


def test_tables_as_list_or_comma_string_deduplicated() -> None:
    assert req({"dataset": "sales", "tables": ["orders", "customers", "orders"]}).tables == ("orders", "customers")
    assert req({"dataset": "sales", "tables": "orders, customers ,"}).tables == ("orders", "customers")


def test_query_mode_with_date() -> None:
    r = req({"export": "orders_daily", "date": "2025-01-08"})
    assert r.export == "orders_daily" and r.date == dt.date(2025, 1, 8)


def test_format_is_case_insensitive_and_normalised() -> None:
    assert req({"dataset": "sales", "format": "newline_delimited_json"}).format == "NEWLINE_DELIMITED_JSON"


def test_destinations_and_run_id() -> None:
    r = req({"dataset": "sales", "destinations": "box,sftp:acme", "run_id": "r0123456789ab"})
    assert r.destinations == ("box", "sftp:acme") and r.run_id == "r0123456789ab"
    assert req({"dataset": "sales", "destinations": "box"}).destinations == ("box",)  # one name as a string


def test_round_trip_through_to_json() -> None:
    r = req(
        {
            "dataset": "sales",
            "tables": ["a"],
            "format": "AVRO",
            "destinations": ["box"],
            "run_id": "x1",
            "date": "2025-01-08",
        }
    )
    assert ExportRequest.from_json(r.to_json()) == r


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"null", "expected a JSON object, got NoneType"),
        (b'"sales"', "expected a JSON object, got str"),
        (json.dumps({"dataset": "sales", "schema_version": 2}), "schema_version: 2 is not supported"),
        (json.dumps({"dataset": "sales", "table": "x"}), "unknown field 'table'"),
        (json.dumps({"dataset": 5}), "dataset: expected a string, got 5"),
        (json.dumps({"dataset": "sales.orders"}), "dataset: 'sales.orders' does not match"),
        (json.dumps({"dataset": "sales`; DROP"}), "does not match"),
        (json.dumps({"export": "x", "tables": ["a"]}), "tables: only valid with 'dataset'"),
        (json.dumps({"dataset": "sales", "tables": []}), "tables: must not be empty"),
        (json.dumps({"dataset": "sales", "tables": ","}), "tables: must not be empty"),
        (json.dumps({"dataset": "sales", "tables": [1]}), "tables: expected a list of strings"),
        (json.dumps({"dataset": "sales", "tables": ["orders eu"]}), "tables: 'orders eu' is not a valid name"),
        (json.dumps({"dataset": "sales", "tables": ["orders.eu"]}), "tables: 'orders.eu' is not a valid name"),
        (
            json.dumps({"dataset": "sales", "destinations": ["dropbox"]}),
            "destinations: 'dropbox' is not a destination name (expected one of box, memory, drive:NAME, sftp:NAME)",
        ),
        (json.dumps({"dataset": "sales", "format": "ORC"}), "format: 'ORC' is not supported"),
        (json.dumps({"dataset": "sales", "format": 1}), "format: expected a string, got 1"),
        (json.dumps({"export": "x", "date": "2025-1-8"}), "date: '2025-1-8' is not a date (expected YYYY-MM-DD)"),
        (json.dumps({"export": "x", "date": "2025-02-29"}), "date: '2025-02-29' is not a valid calendar date"),
        (json.dumps({"dataset": "sales", "run_id": "-starts-with-dash"}), "run_id: '-starts-with-dash' does not match"),
        (json.dumps({"dataset": "sales", "run_id": "x" * 64}), "run_id:"),
    ],
)
def test_rejections_name_field_and_value(data, needle: str) -> None:
    with pytest.raises(RejectedInput) as info:
        ExportRequest.from_json(data)
    assert needle in str(info.value)
    assert str(info.value).startswith("export request")


def test_oversized_message_is_rejected_before_parsing() -> None:
    data = b"{" + b" " * MAX_MESSAGE_BYTES + b"}"
    with pytest.raises(RejectedInput, match=f"message is {len(data)} bytes; the limit is {MAX_MESSAGE_BYTES}"):
        ExportRequest.from_json(data)


def test_long_bad_values_are_truncated_in_errors() -> None:
    with pytest.raises(RejectedInput) as info:
        req({"dataset": "sales", "tables": ["x" * 5000 + "!"]})
    assert len(str(info.value)) < 300


# ---- TableExport ---------------------------------------------------------------------------


def task(**changes) -> dict:
    base = {
        "run_id": "r0123456789ab",
        "date": "2025-01-08",
        "source": {"mode": "table", "project": "p", "dataset": "sales", "table": "orders"},
        "format": "PARQUET",
        "destinations": ["box"],
        "prefix": "exports/sales/orders/20250108/r0123456789ab/",
        "file_name": "orders_{YYYYMMDD}-*.parquet",
    }
    base.update(changes)
    return base


def test_table_export_round_trip() -> None:
    t = TableExport.from_json(json.dumps(task()))
    assert t.source == Source(mode="table", project="p", dataset="sales", table="orders")
    assert t.date == dt.date(2025, 1, 8) and t.destinations == ("box",)
    assert TableExport.from_json(t.to_json()) == t
    assert json.loads(t.to_json())["source"] == {"mode": "table", "project": "p", "dataset": "sales", "table": "orders"}


def test_table_export_query_mode_and_defaults() -> None:
    obj = task(source={"mode": "query", "project": "p", "export": "orders_daily"})
    del obj["file_name"]
    t = TableExport.from_json(json.dumps(obj))
    assert t.source.label == "export:orders_daily" and t.file_name == "part-*"


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"run_id": None}, "table export.run_id: required field is missing"),
        ({"date": None}, "table export.date: required field is missing"),
        ({"format": None}, "table export.format: required field is missing"),
        ({"prefix": None}, "table export.prefix: required field is missing"),
        ({"source": "sales.orders"}, "table export.source: expected an object"),
        (
            {"source": {"mode": "view", "project": "p"}},
            "table export.source.mode: 'view' is not 'table' or 'query'",
        ),
        (
            {"source": {"mode": "collect", "collect": "toast", "project": "p"}},
            "table export.source.mode: 'collect' is not 'table' or 'query'",
        ),
        (
            {"source": {"mode": "table", "project": "p", "dataset": "sales"}},
            "table export.source.table: required field is missing",
        ),
        ({"source": {"mode": "query", "project": "p"}}, "table export.source.export: required field is missing"),
        (
            {"source": {"mode": "table", "project": "p", "dataset": "s", "table": "a;b"}},
            "source.table: 'a;b' does not match",
        ),
        ({"extra": 1}, "unknown field 'extra'"),
        ({"format": "TXT"}, "format: 'TXT' is not supported"),
    ],
)
def test_table_export_rejections(changes: dict, needle: str) -> None:
    obj = task(**changes)
    for key in [k for k, v in changes.items() if v is None]:
        del obj[key]
    with pytest.raises(RejectedInput) as info:
        TableExport.from_json(json.dumps(obj))
    assert needle in str(info.value)
