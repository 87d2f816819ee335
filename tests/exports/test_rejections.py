"""Bad export requests: each acked, reported as ``rejected`` on verify-results, naming field and value."""

from __future__ import annotations

import json

import pytest

from shared.topology import TABLE_EXPORTS, VERIFY_RESULTS
from tests.exports.conftest import ExportsKit

TEN_MB = 10 * 1024 * 1024

CASES = [
    pytest.param(b"{not json", "not valid JSON", id="not-json"),
    pytest.param(b'["sales"]', "expected a JSON object, got list", id="not-an-object"),
    pytest.param(
        {"dataset": "nope"}, "dataset: 'nope' is not a configured dataset (configured: sales)", id="unknown-dataset"
    ),
    pytest.param(
        {"dataset": "sales", "tables": ["ghost"]},
        "tables: 'ghost' is not a table of offsite-local.sales",
        id="unknown-table",
    ),
    pytest.param({"dataset": "sales", "tables": ["orders_by_day"]}, "'orders_by_day' is a VIEW", id="view-named"),
    pytest.param(
        {"export": "nope"}, "export: 'nope' is not a configured export (configured: orders_daily)", id="unknown-export"
    ),
    pytest.param(
        {"export": "orders_daily", "date": "08/01/2025"}, "date: '08/01/2025' is not a date", id="date-format"
    ),
    pytest.param(
        {"export": "orders_daily", "date": "2025-02-30"},
        "date: '2025-02-30' is not a valid calendar date",
        id="date-calendar",
    ),
    pytest.param({"export": "orders_daily", "date": 20250108}, "date: expected a string, got 20250108", id="date-type"),
    pytest.param(
        {"dataset": "sales", "export": "orders_daily"}, "give either 'dataset' or 'export', not both", id="both"
    ),
    pytest.param({}, "one of 'dataset' (whole tables) or 'export' (a configured query) is required", id="neither"),
    pytest.param(
        {"dataset": "sales", "tables": 5},
        "tables: expected a list of strings or a comma-separated string, got 5",
        id="tables-int",
    ),
    pytest.param({"dataset": "sales", "tables": {"a": 1}}, "tables: expected a list of strings", id="tables-object"),
    pytest.param({"dataset": "sales", "format": "XML"}, "format: 'XML' is not supported", id="format"),
    pytest.param(
        {"dataset": "sales", "destinations": ["sftp:nobody"]},
        "destinations: 'sftp:nobody' is not a configured destination",
        id="destination",
    ),
    pytest.param(
        {"dataset": "sales", "destinations": "ftp://x"},
        "destinations: 'ftp://x' is not a destination name (expected one of box",
        id="destination-shape",
    ),
    pytest.param(
        {"dataset": "sales", "tables": "orders; DROP TABLE sales.orders"},
        "tables: 'orders; DROP TABLE sales.orders' is not a valid name",
        id="sql-in-tables",
    ),
    pytest.param(
        {"export": "orders_daily", "date": "2025-01-08' OR '1'='1"},
        "date: \"2025-01-08' OR '1'='1\" is not a date",
        id="sql-in-date",
    ),
    pytest.param({"dataset": "sales", "run_id": "../../x"}, "run_id: '../../x' does not match", id="run-id"),
    # "$" matched before a final newline: "r1\n" named folders and jobs
    pytest.param({"dataset": "sales", "run_id": "r1\n"}, "run_id: 'r1\\n' does not match", id="run-id-newline"),
    pytest.param({"dataset": "sales\n"}, "dataset: 'sales\\n' does not match", id="dataset-newline"),
    pytest.param({"export": "orders_daily", "date": "2025-01-08\n"}, "is not a date (expected", id="date-newline"),
    pytest.param(
        {"export": "orders_daily", "date": "\uff12\uff10\uff12\uff15-01-08"}, "is not a date", id="date-digits"
    ),
    pytest.param({"dataset": "sales", "colour": "red"}, "unknown field 'colour'", id="unknown-field"),
]


@pytest.mark.parametrize(("body", "needle"), CASES)
def test_bad_request_is_rejected_and_reported(exports_env: ExportsKit, body, needle: str) -> None:
    kit = exports_env
    results = kit.subscribe(VERIFY_RESULTS)
    exports = kit.subscribe(TABLE_EXPORTS)
    event = kit.request_event(body)
    kit.main.fan_out(event)  # returns normally: HTTP 2xx, the message is acked
    (result,) = results.pull(lambda m: m.get("message_id") == event["id"], count=1)
    assert result["status"] == "rejected"
    assert result["stage"] == "fan_out"
    assert needle in result["reason"], result["reason"]
    assert result["_attributes"] == {"status": "rejected"}
    assert exports.drain(settle_s=0.5) == []


def test_ten_megabyte_message_is_rejected_without_parsing(exports_env: ExportsKit) -> None:
    kit = exports_env
    results = kit.subscribe(VERIFY_RESULTS)
    body = json.dumps({"dataset": "sales", "tables": ["orders"] * (TEN_MB // 10)}).encode()[:TEN_MB]
    event = kit.request_event(body)
    kit.main.fan_out(event)
    (result,) = results.pull(lambda m: m.get("message_id") == event["id"], count=1)
    assert result["status"] == "rejected"
    assert f"message is {TEN_MB} bytes; the limit is 65536" in result["reason"]
    assert len(json.dumps(result)) < 2000  # the report does not echo the payload
