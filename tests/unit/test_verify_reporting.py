"""Pure parts of verify's reporting: status rows, --since, the demo summary, result building."""

from __future__ import annotations

import datetime as dt

import pytest
import typer

from devstack.demo_summary import Delivery, Progress, summary_lines
from offsite.cli.ops import parse_since, status_rows
from shared.messages import VerifyResult
from shared.reporting.history import days, object_name

ORDERS = {"mode": "table", "project": "p", "dataset": "sales", "table": "orders"}
PRODUCTS = {"mode": "query", "project": "p", "export": "product_data"}


def result(status: str, destination: str | None, finished: str, **kw) -> VerifyResult:
    base = {"run_id": "r1", "source": ORDERS, "date": "2025-01-08", "files_expected": 3, "bytes_expected": 300}
    return VerifyResult(status=status, destination=destination, finished_at=finished, **{**base, **kw})


def test_status_rows_keep_the_latest_status_per_destination_and_the_last_failure() -> None:
    rows = status_rows(
        [
            result("mismatch", "sftp:acme", "2025-01-08T02:03:00", reason="1 missing (a)", duration_s=180.0),
            result("in_sync", "box", "2025-01-08T02:04:00", duration_s=240.0),
            result("in_sync", "sftp:acme", "2025-01-08T02:05:00", duration_s=300.0),
            result("incomplete", "sftp:acme", "2025-01-08T02:06:00", run_id="r2", source=PRODUCTS, files_expected=0),
            VerifyResult(status="rejected", stage="verify", reason="not valid JSON", finished_at="2025-01-08T02:07:00"),
        ]
    )
    assert [r["run_id"] for r in rows] == ["-", "r2", "r1"]  # newest first
    r1 = rows[2]
    assert r1["destinations"] == {"sftp:acme": "in_sync", "box": "in_sync"}
    assert (r1["files"], r1["bytes"], r1["duration_s"]) == (3, 300, 300.0)
    assert r1["last_failure"] == "sftp:acme: mismatch: 1 missing (a)"
    assert rows[1]["source"] == "export:product_data" and rows[1]["files"] is None
    assert rows[0]["last_failure"] == "verify: rejected: not valid JSON"


def test_status_rows_keep_each_message_rejected_before_it_had_a_run_apart() -> None:
    """A message rejected before a run id was given (bad JSON, an unknown field, a bad date) is
    its own event: three bad messages are three rows, not one row showing only the last."""
    bad = [
        VerifyResult(status="rejected", stage="fan_out", reason=reason, finished_at=f"2025-01-08T02:0{i}:00")
        for i, reason in enumerate(
            [
                "export request.date: '2025-02-30' is not a valid calendar date",
                "export request.format: 'XML' is not supported",
                "export request: unknown field 'datset'",
            ]
        )
    ]
    rows = status_rows([*bad, result("in_sync", "box", "2025-01-08T02:09:00")])
    assert [(r["run_id"], r["source"]) for r in rows] == [("r1", "sales.orders"), *[("-", "-")] * 3]
    assert [r["last_failure"] for r in rows[1:]] == [f"fan_out: rejected: {b.reason}" for b in reversed(bad)]


def test_a_drill_request_rejected_before_it_named_a_destination_says_its_stage() -> None:
    rejected = VerifyResult(
        status="rejected", stage="restore_drill", reason="restore drill: no dataset 'hr' in the config"
    )
    [row] = status_rows([rejected])
    assert row["last_failure"] == "restore_drill: rejected: restore drill: no dataset 'hr' in the config"
    failed = result("restore_failed", "box", "t", stage="restore_drill", reason="restored table differs")
    [row] = status_rows([failed])
    assert row["last_failure"] == "restore drill from box: restore_failed: restored table differs"


def test_a_result_of_no_one_destination_shows_its_stage_status() -> None:
    """A collect run's one result covers all its destinations, and a rejected message has none:
    the row says their status by stage. Before, a collect run in_sync showed DESTINATIONS '-'."""
    from offsite.cli.ops import status_cells

    toast = {"mode": "collect", "collect": "toast"}
    collected = result("in_sync", None, "t2", run_id="r7", source=toast, stage="collect_copy", date=None)
    rejected = VerifyResult(status="rejected", stage="verify", reason="not valid JSON", finished_at="t1")
    rows = status_rows([rejected, collected])
    assert [(r["destinations"], r["stages"]) for r in rows] == [
        ({}, {"collect_copy": "in_sync"}),
        ({}, {"verify": "rejected"}),
    ]
    assert status_cells(rows[0])[:4] == ["r7", "collect:toast", None, "collect_copy=in_sync"]
    both = status_rows([result("in_sync", "box", "t1"), result("failed", None, "t2", stage="export_table")])
    assert status_cells(both[0])[3] == "box=in_sync, export_table=failed"


def test_a_run_failure_of_no_destination_is_over_once_every_destination_has_a_result_after_it() -> None:
    """A dead-lettered verify of the manifest fails the run, not a destination. Once the run is
    replayed and every destination is verified again, the row is no longer failing; the failure
    stays as its last failure (history)."""
    from offsite.cli.ops import is_failing

    box, dead = result("in_sync", "box", "t1"), result("failed", None, "t2", stage="verify", reason="dead-lettered")
    [row] = status_rows([box, dead])
    assert row["stages"] == {"verify": "failed"} and is_failing(row)
    [row] = status_rows([box, dead, result("in_sync", "sftp:acme", "t3")])  # box's result is older than it
    assert row["stages"] == {"verify": "failed"} and is_failing(row)
    [row] = status_rows([box, dead, result("in_sync", "sftp:acme", "t3"), result("in_sync", "box", "t4")])
    assert row["stages"] == {} and not is_failing(row)
    assert row["last_failure"] == "verify: failed: dead-lettered"


def test_a_run_whose_first_result_has_no_date_takes_the_date_of_a_later_one() -> None:
    """A dateless request dead-lettered at fan_out (GCS away), then replayed: its first result
    has no scheduled day, the deliveries have. The row showed DATE `-` for good."""
    dead = result("failed", None, "2025-01-08T02:00:00", stage="fan_out", date=None, reason="dead-lettered")
    [row] = status_rows([dead, result("in_sync", "box", "2025-01-08T02:09:00")])
    assert row["date"] == "2025-01-08" and row["destinations"] == {"box": "in_sync"}


def test_status_rows_filter_by_dataset() -> None:
    rows = status_rows(
        [result("in_sync", "box", "t1"), result("in_sync", "box", "t2", run_id="r2", source=PRODUCTS)], "sales"
    )
    assert [r["run_id"] for r in rows] == ["r1"]


def test_parse_since() -> None:
    assert parse_since("7d") == dt.timedelta(days=7)
    assert parse_since("30m") == dt.timedelta(minutes=30)
    assert parse_since("2w") == dt.timedelta(weeks=2)
    with pytest.raises(typer.BadParameter):
        parse_since("soon")


def test_history_names_and_days() -> None:
    now = dt.datetime(2025, 1, 8, 2, 3, 4, 5, tzinfo=dt.UTC)
    name = object_name(result("in_sync", "sftp:acme", "x"), now)
    assert name.startswith("results/20250108/r1/sftp:acme/20250108T020304.000005Z-in_sync-") and name.endswith(".json")
    assert object_name(VerifyResult(status="rejected"), now).startswith("results/20250108/-/-/")
    assert days(now - dt.timedelta(days=2), now) == ["20250106", "20250107", "20250108"]


def test_summary_is_green_only_when_every_delivery_is_in_sync_with_sha1() -> None:
    good = result("in_sync", "box", "t", check="sha1", files_present=3, bytes_present=300, duration_s=12.0)
    weak = result("in_sync", "sftp:acme", "t", check="size-only", files_present=3, bytes_present=300)
    state = Progress(deliveries=[Delivery("r1", "sales.orders", "2025-01-08", "box", good)])
    assert state.all_in_sync
    lines = summary_lines(state)
    assert lines[0] == "run r1  sales.orders  2025-01-08"
    assert lines[1].split() == ["box", "in_sync", "check:", "sha1", "files", "3/3", "bytes", "300", "B", "12.0", "s"]
    assert lines[-1] == "all deliveries in sync with sha1: 1 of 1"
    state.deliveries.append(Delivery("r1", "sales.orders", "2025-01-08", "sftp:acme", weak))
    assert not state.all_in_sync and summary_lines(state)[-1] == "NOT all deliveries in sync with sha1: 1 of 2"
    waiting = Progress(deliveries=[Delivery("r1", "sales.orders", "2025-01-08", "box")])
    assert not waiting.done and "(no result yet)" in summary_lines(waiting)[1]


def test_status_rows_filter_by_query_export_and_by_failing() -> None:
    """--export keeps one query export's runs; --failing keeps the runs whose latest result
    somewhere is a failure (a run healed to in_sync since is not one, nor is an older run that
    failed once at a destination it later reached)."""
    from offsite.cli.ops import is_failing

    history = [
        result("mismatch", "box", "t1"),  # r1 at box: healed below
        result("in_sync", "box", "t2"),
        result("in_sync", "sftp:acme", "t3", run_id="r2"),
        result("failed", "box", "t4", run_id="r2", reason="Box answered 403"),
        result("in_sync", "box", "t5", run_id="r3", source=PRODUCTS),
        result("failed", None, "t6", run_id="r4", source=PRODUCTS, stage="export_table"),
    ]
    assert [row["run_id"] for row in status_rows(history, export="product_data")] == ["r4", "r3"]
    assert [row["run_id"] for row in status_rows(history, failing=True)] == ["r4", "r2"]
    assert [row["run_id"] for row in status_rows(history, export="product_data", failing=True)] == ["r4"]
    [healed] = status_rows(history[:2])
    assert healed["last_failure"] and not is_failing(healed)  # the column remembers; --failing does not
    drill = result("restore_failed", "box", "t7", stage="restore_drill", run_id="r1")
    assert [row["run_id"] for row in status_rows([*history[:2], drill], failing=True)] == ["r1"]
