"""How a run's results fold into its progress per table and destination
(shared/http_trigger/progress.py: GET /runs, POST /run?wait and `offsite run --wait` read it)."""

from __future__ import annotations

from shared.http_trigger.progress import progress
from shared.messages import Source, VerifyResult

ORDERS = Source(mode="table", project="p", dataset="sales", table="orders")
EXPECTED = {"sales.orders": ("orders", "2025-01-08", ("box", "sftp:local"))}


def _result(status: str, destination: str | None, stage: str, reason: str | None = None) -> VerifyResult:
    return VerifyResult(status=status, run_id="r1", source=ORDERS, destination=destination, stage=stage, reason=reason)


def test_a_failed_export_fails_every_destination_of_its_table() -> None:
    failed = _result("failed", None, "export_table", "the extract job failed")
    [table] = progress("r1", EXPECTED, [failed]).tables
    assert table.destinations == {"box": failed, "sftp:local": failed}
    assert table.reason == "the extract job failed" and table.done


def test_a_failure_of_no_destination_leaves_a_final_result_standing_and_fails_the_rest() -> None:
    """A dead-lettered verify of the manifest names the run, not a destination: box's in_sync
    stays; sftp:local, found incomplete so far, ends failed."""
    in_sync = _result("in_sync", "box", "verify")
    delivering = _result("incomplete", "sftp:local", "verify")
    dead = _result("failed", None, "verify", "dead-lettered after 5 delivery attempts on verify-gcs-finalized")
    [table] = progress("r1", EXPECTED, [in_sync, delivering, dead]).tables
    assert table.destinations == {"box": in_sync, "sftp:local": dead}
    assert table.done
