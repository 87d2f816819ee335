"""`offsite run`'s request body: only what was given, lists split, the run id always set."""

from __future__ import annotations

from offsite.cli.run import request_body


def test_dataset_options_become_the_scheduler_body() -> None:
    body = request_body(
        dataset="sales",
        tables="orders, customers",
        export=None,
        date=None,
        destinations="box,sftp:acme",
        fmt="AVRO",
        run_id="r1",
    )
    assert body == {
        "dataset": "sales",
        "tables": ["orders", "customers"],
        "destinations": ["box", "sftp:acme"],
        "format": "AVRO",
        "run_id": "r1",
    }


def test_query_options() -> None:
    body = request_body(
        dataset=None, tables=None, export="daily", date="2025-01-08", destinations=None, fmt=None, run_id="r2"
    )
    assert body == {"export": "daily", "date": "2025-01-08", "run_id": "r2"}


def test_empty_lists_stay_visible_to_the_parser() -> None:
    """`--tables ,` must reach the parser (and be rejected there), not silently mean "all tables"."""
    body = request_body(dataset="sales", tables=",", export=None, date=None, destinations=None, fmt=None, run_id="r3")
    assert body["tables"] == ","
