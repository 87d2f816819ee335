"""A failed export run is reported once, and at least once (shared/stages/export.py).

- Its once-per-run claim (``_export/failure.json``) was kept when the report could not be
  published: every later finisher took the failure as reported, and it never was.
- A DONE job whose files cannot make a manifest failed outside that claim: every finalize sweep
  (each 15 minutes, for two days) reported it again.
"""

from __future__ import annotations

import re

import pytest

from shared.gcp import gcs
from shared.topology import VERIFY_RESULTS
from tests.exports.conftest import ExportsKit, manifest_of, table_task
from tests.exports.test_completion_events import sweep_event
from tests.pubsub_outage import PublishOutage


def _reports(results, run_id: str) -> list[dict]:
    return [m for m in results.drain() if m.get("run_id") == run_id]


@pytest.mark.parametrize("later_attempt", ["redelivery", "sweep"])
def test_a_failure_whose_report_could_not_be_published_is_reported_later(
    exports_env: ExportsKit, monkeypatch: pytest.MonkeyPatch, later_attempt: str
) -> None:
    kit = exports_env
    results = kit.subscribe(VERIFY_RESULTS)
    task = table_task(kit, "customers", "CSV")  # CSV of a nested table: the job fails
    outage = PublishOutage(monkeypatch, VERIFY_RESULTS)
    kit.main.export_table(kit.table_export_event(task))  # the report is lost; the message is acked
    assert outage.refused > 0
    outage.end()
    if later_attempt == "redelivery":
        kit.main.export_table(kit.table_export_event(task))
    kit.main.export_table(sweep_event(kit))
    kit.main.export_table(sweep_event(kit))  # the failure is out now: not again
    (reported,) = _reports(results, task.run_id)
    assert (reported["status"], reported["stage"]) == ("failed", "export_table")
    assert "nested schema" in reported["reason"]
    assert manifest_of(kit, task) is None


def test_a_run_whose_files_cannot_make_a_manifest_is_reported_once(exports_env: ExportsKit) -> None:
    """A stale shard (of an earlier attempt, say) matches the run's file pattern beside what the
    job wrote: the job reports fewer files than match, and no manifest can be written."""
    kit = exports_env
    results = kit.subscribe(VERIFY_RESULTS)
    task = table_task(kit, "orders", "PARQUET")
    gcs.write(
        kit.bucket, f"{task.prefix}orders_20250108-000000000099.parquet", b"PAR1 stale", "application/octet-stream"
    )
    kit.main.export_table(kit.table_export_event(task))
    for _ in range(3):  # three scheduled sweeps, 15 minutes apart
        kit.main.export_table(sweep_event(kit))
    kit.main.export_table(kit.table_export_event(task))  # and a redelivered request
    (reported,) = _reports(results, task.run_id)
    assert (reported["status"], reported["stage"]) == ("failed", "export_table")
    counts = re.search(r"reports (\d+) files but (\d+) match", reported["reason"])
    assert counts is not None and int(counts[2]) == int(counts[1]) + 1, reported["reason"]
    assert manifest_of(kit, task) is None
