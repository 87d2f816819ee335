"""An export's fingerprint is ONE BigQuery query, however many handlers finish the run
(docs/exports.md, "fingerprint"): the request handler and the job's completion event (or the
finalize sweep) both wait on the same export job; when it ends they both go on to finish the
run, and both must re-attach to one fingerprint job instead of scanning the table twice.

The front holds the export job RUNNING (``/_bqfront/holds``) until both callers are past the
manifest check and waiting on it; the queries bqemulator received are then counted by their SQL
(jobs.list through the front)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from devstack.launches import AUDIT_LOG_TOPIC
from shared.gcp.bigquery import BigQueryWarehouse, ExportJob, ExportResult
from shared.gcp.fingerprint_job import fingerprint_job_id
from shared.stages.export import export_job_id, export_table, run_export
from tests.exports.conftest import ExportsKit, manifest_of, table_task
from tests.exports.test_completion_events import Hold, completion_event
from tests.threads import together


class Entered(BigQueryWarehouse):
    """The real warehouse; ``entered`` is set when a caller reaches ``export`` (past the manifest check)."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.entered = threading.Event()

    def export(self, job: ExportJob) -> ExportResult:
        self.entered.set()
        return super().export(job)


def fingerprint_queries(kit: ExportsKit, table: str, started_micros: int) -> list[dict[str, Any]]:
    """The fingerprint query jobs bqemulator holds for ``table`` as of ``started_micros``."""
    marker = f"{table}` FOR SYSTEM_TIME AS OF TIMESTAMP_MICROS({started_micros})"
    jobs = kit.bigquery().list_jobs(max_results=100_000)
    found = []
    for job in jobs:
        sql = str((job._properties.get("configuration") or {}).get("query", {}).get("query", ""))
        if "FARM_FINGERPRINT" in sql and marker in sql:
            found.append(job._properties)
    return found


def test_the_handler_and_the_completion_path_share_one_fingerprint_query(
    exports_env: ExportsKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    kit = exports_env
    monkeypatch.setenv("OFFSITE_EXPORT_BUDGET_S", "300")
    task = table_task(kit, "customers", "PARQUET")
    export_id = export_job_id(task, kit.config)
    handler_wh, event_wh = Entered(kit.bigquery()), Entered(kit.bigquery())

    def handler() -> Any:
        return export_table(kit.table_export_event(task), kit.config, wh=handler_wh)

    def completion() -> Any:  # what finalize_job and the sweep run for this run folder
        handler_wh.entered.wait(120)
        # a completion event exists only once the job does: "entered" is set before the insert
        from google.api_core.exceptions import NotFound

        for _ in range(600):
            try:
                kit.bigquery().get_job(export_id)
                break
            except NotFound:
                time.sleep(0.1)
        return run_export(task, kit.config, event_wh, time.monotonic() + 300, start=False)

    with Hold(kit, export_id) as hold:
        results: list[object] = []

        def release_when_both_wait() -> None:
            assert handler_wh.entered.wait(120) and event_wh.entered.wait(120)
            hold.release()

        results = together(handler, completion, release_when_both_wait)
    manifest = manifest_of(kit, task)
    assert manifest is not None and results[0] == manifest and results[1] == manifest
    started = kit.bigquery().get_job(export_id).started
    queries = fingerprint_queries(kit, "customers", round(started.timestamp() * 1_000_000))
    assert [q["jobReference"]["jobId"] for q in queries] == [fingerprint_job_id(export_id)]
    assert manifest.fingerprint is not None and manifest.fingerprint["row_count"] == manifest.row_count


class Deadlines(BigQueryWarehouse):
    """The real warehouse; records, for each ``export`` call, how long its caller is ready to wait."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.waits: list[float] = []

    def export(self, job: ExportJob) -> ExportResult:
        self.waits.append(job.deadline - time.monotonic())
        return super().export(job)


def test_a_fingerprint_jobs_completion_event_finishes_its_run(
    exports_env: ExportsKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fingerprint job can outlast every handler's deadline (a huge table). The export job's
    completion event starts it and looks once, never waiting (an instance held for nothing); the
    fingerprint job's own completion event, which names a ``…_fingerprint`` job, finishes the run."""
    from shared.stages.export import finalize_job

    kit = exports_env
    monkeypatch.setenv("OFFSITE_EXPORT_BUDGET_S", "1")
    audit = kit.subscribe(AUDIT_LOG_TOPIC)
    task = table_task(kit, "customers", "AVRO")
    export_id = export_job_id(task, kit.config)
    fingerprint_id = fingerprint_job_id(export_id)
    with Hold(kit, fingerprint_id) as fingerprint_hold:
        with Hold(kit, export_id):
            assert export_table(kit.table_export_event(task), kit.config) is None  # acked while it runs
        export_done = completion_event(audit, export_id)
        wh = Deadlines(kit.bigquery())
        assert finalize_job(export_done, kit.config, wh=wh) is None  # the fingerprint job runs
        assert len(wh.waits) == 1 and wh.waits[0] <= 0  # one look, no wait
        assert kit.bigquery().get_job(fingerprint_id).state == "RUNNING"
        assert manifest_of(kit, task) is None
        fingerprint_hold.release()
        fingerprint_done = completion_event(audit, fingerprint_id)
    manifest = finalize_job(fingerprint_done, kit.config)
    assert manifest is not None and manifest == manifest_of(kit, task)
    assert manifest.fingerprint is not None and manifest.job_id == export_id
    done = kit.bigquery().get_job(export_id)
    queries = fingerprint_queries(kit, "customers", round(done.started.timestamp() * 1_000_000))
    assert [q["jobReference"]["jobId"] for q in queries] == [fingerprint_id]
