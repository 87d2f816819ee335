"""A message with a number of thousands of digits is rejected and acknowledged, not retried:
json.loads raised a bare ValueError, so fan_out and export_table answered 500 and Pub/Sub
redelivered the message until it was dead-lettered (reported only then, as ``failed``)."""

from __future__ import annotations

import sys

from shared.topology import TABLE_EXPORTS, VERIFY_RESULTS
from tests.exports.conftest import ExportsKit

HUGE = b"9" * (sys.get_int_max_str_digits() + 1)


def test_a_request_with_a_huge_number_is_rejected_and_acked(exports_env: ExportsKit) -> None:
    kit = exports_env
    results = kit.subscribe(VERIFY_RESULTS)
    published = kit.subscribe(TABLE_EXPORTS)
    event = kit.request_event(b'{"dataset": "sales", "schema_version": ' + HUGE + b"}")
    kit.main.fan_out(event)  # returns: the message is acknowledged
    (result,) = results.pull(lambda m: m.get("message_id") == event["id"], count=1)
    assert (result["status"], result["stage"]) == ("rejected", "fan_out")
    assert result["reason"] == (
        f"export request: a number in the JSON has more than {sys.get_int_max_str_digits()} digits; no field takes one"
    )
    assert published.drain() == []


def test_a_table_export_with_a_huge_number_is_rejected_and_acked(exports_env: ExportsKit) -> None:
    kit = exports_env
    results = kit.subscribe(VERIFY_RESULTS)
    event = kit.table_export_event(b'{"run_id": "r1", "rows": ' + HUGE + b"}")
    kit.main.export_table(event)
    (result,) = results.pull(lambda m: m.get("message_id") == event["id"], count=1)
    assert (result["status"], result["stage"]) == ("rejected", "export_table")
    assert result["reason"].startswith("table export: a number in the JSON has more than")
