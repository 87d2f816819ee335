"""An export's row count, when BigQuery gave none (no fingerprint of a table; no rowCount of a
query), is ONE BigQuery query under a deterministic id, ``…_count`` (``…_count_live`` when the
time-travel count is refused), started once and re-attached to like the fingerprint job
(shared/gcp/fingerprint_job.py). Before, it was an unnamed query waited for 120 s, and a wait
that ran out started a new full-table query on every retry.

Each test exports a table of its own (a dataset made for it), so every COUNT(*) bqemulator ran
over that table is the export's: jobs.list through the front finds them by their SQL. The
fingerprint is made to fail (no fingerprint, so the count is needed) the way BigQuery could: its
job already exists and failed (inserted here under its deterministic id). The front holds the
count job RUNNING (``/_bqfront/holds``) for as long as a test needs it to outlast a deadline."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import uuid
from collections.abc import Iterator

import pytest
from google.cloud import bigquery

from devstack.launches import AUDIT_LOG_TOPIC
from shared.gcp.bigquery import BigQueryWarehouse, ExportJob, TableRef
from shared.gcp.bq_jobs import JobPending
from shared.gcp.fingerprint_job import (
    count_job_id,
    export_job_of,
    fingerprint_job_id,
    is_export_step,
    run_step_job_ids,
)
from shared.stages.export import export_job_id, finalize_job, run_export
from tests.exports.conftest import ExportsKit, manifest_of, new_run_id
from tests.exports.test_completion_events import Hold, completion_event

ROWS = 37


@pytest.fixture
def dataset(exports_env: ExportsKit) -> Iterator[str]:
    """A dataset of its own holding one table ``items`` of ROWS rows (not `sales`: other tests list its tables)."""
    bq = exports_env.bigquery()
    name = f"counted_{uuid.uuid4().hex[:8]}"
    bq.create_dataset(f"{bq.project}.{name}")
    table = bigquery.Table(
        f"{bq.project}.{name}.items",
        schema=[bigquery.SchemaField("id", "INT64"), bigquery.SchemaField("name", "STRING")],
    )
    bq.create_table(table)
    assert bq.insert_rows_json(table, [{"id": i, "name": f"item {i}"} for i in range(ROWS)]) == []
    yield name
    bq.delete_dataset(f"{bq.project}.{name}", delete_contents=True, not_found_ok=True)


def plant_failed_job(kit: ExportsKit, job_id: str, why: str) -> None:
    """Job ``job_id`` exists and failed (reason invalidQuery, not one to retry): what a finisher
    re-attaching to it finds."""
    job = kit.bigquery().query(f"SELECT ERROR('{why}')", job_id=job_id, job_retry=None)
    assert job.state == "DONE" and job.error_result["reason"] == "invalidQuery"


def count_queries(kit: ExportsKit, table_id: str) -> list[str]:
    """The ids of the COUNT(*) queries over ``table_id`` bqemulator ran (a held job reaches it
    once released), time travel or not."""
    head = f"SELECT COUNT(*) AS n FROM `{table_id}`"
    found = []
    for job in kit.bigquery().list_jobs(max_results=100_000):
        sql = str((job._properties.get("configuration") or {}).get("query", {}).get("query", ""))
        if sql.startswith(head):
            found.append(str(job.job_id))
    return sorted(found)


def wait_done(kit: ExportsKit, job_id: str) -> None:
    for _ in range(600):
        if kit.bigquery().get_job(job_id).state == "DONE":
            return
        time.sleep(0.1)
    raise AssertionError(f"{job_id} is not DONE after 60 s")


def export_of(kit: ExportsKit, dataset: str) -> ExportJob:
    """The export of ``dataset.items`` as export_table makes it (its deadline: now)."""
    project = kit.stack.project
    return ExportJob(
        f"offsite_{new_run_id()}_{dataset}_items_{uuid.uuid4().hex[:8]}_export",
        TableRef(project, dataset, "items"),
        kit.bucket,
        f"exports/{dataset}/{uuid.uuid4().hex[:8]}/",
        "items-*.parquet",
        "PARQUET",
        time.monotonic(),
    )


def exported_once(kit: ExportsKit, wh: BigQueryWarehouse, job: ExportJob) -> None:
    """The export job started (the caller holds it RUNNING): JobPending names it, not a count."""
    with pytest.raises(JobPending) as pending:
        wh.export(dataclasses.replace(job, deadline=time.monotonic() + 0.5))
    assert pending.value.job_id == job.job_id


def pending_on(wh: BigQueryWarehouse, job: ExportJob, wait_s: float = 0.5) -> JobPending:
    with pytest.raises(JobPending) as pending:
        wh.export(dataclasses.replace(job, deadline=time.monotonic() + wait_s))
    return pending.value


def test_count_job_ids_derive_as_the_fingerprints() -> None:
    export = "offsite_r1_sales_orders_0a1b2c3d_export"
    assert count_job_id(export) == count_job_id(export + "_retry2") == "offsite_r1_sales_orders_0a1b2c3d_count"
    assert count_job_id(export, live=True) == "offsite_r1_sales_orders_0a1b2c3d_count_live"
    assert run_step_job_ids(export + "_retry1") == (
        fingerprint_job_id(export),
        count_job_id(export),
        count_job_id(export, live=True),
    )
    for step in run_step_job_ids(export):
        assert is_export_step(step) and is_export_step(step + "_retry2")
        assert export_job_of(step) == export_job_of(step + "_retry1") == export
    assert export_job_of(export) is None and not is_export_step("offsite_r1_sales_orders_0a1b2c3d_count_copy")


def test_past_the_deadline_the_count_is_pending_and_never_started_again(exports_env: ExportsKit, dataset: str) -> None:
    """(b) A count that outlasts the caller's deadline raises JobPending naming ``…_count``; the
    next finisher re-attaches to that job: bqemulator runs ONE count query, of the snapshot."""
    kit = exports_env
    wh = BigQueryWarehouse(kit.bigquery())
    job = export_of(kit, dataset)
    count_id = count_job_id(job.job_id)
    plant_failed_job(kit, fingerprint_job_id(job.job_id), "no fingerprint here")
    with Hold(kit, count_id) as count_hold:
        with Hold(kit, job.job_id) as export_hold:
            exported_once(kit, wh, job)
            export_hold.release()
            wait_done(kit, job.job_id)
        first = pending_on(wh, job)
        assert (first.job_id, first.state) == (count_id, "RUNNING")
        again = pending_on(wh, job)  # a redelivery, a completion event, the sweep: the same job
        assert (again.job_id, again.state) == (count_id, "RUNNING")
        count_hold.release()
        result = wh.export(dataclasses.replace(job, deadline=time.monotonic() + 60))
    assert result.row_count == ROWS and result.fingerprint is None
    table_id = f"{kit.stack.project}.{dataset}.items"
    assert count_queries(kit, table_id) == [count_id]
    sql = kit.bigquery().get_job(count_id)._properties["configuration"]["query"]["query"]
    started = kit.bigquery().get_job(job.job_id).started
    assert f"FOR SYSTEM_TIME AS OF TIMESTAMP_MICROS({round(started.timestamp() * 1_000_000)})" in sql


def test_a_refused_time_travel_count_falls_back_to_its_own_live_count_job(
    exports_env: ExportsKit, dataset: str
) -> None:
    """``…_count`` failed (time travel refused): the live count is job ``…_count_live``, started
    once and re-attached to as well; ``…_count`` is never started again (no ``_retryN``: the
    failure is not a transient one)."""
    kit = exports_env
    wh = BigQueryWarehouse(kit.bigquery())
    job = export_of(kit, dataset)
    count_id, live_id = count_job_id(job.job_id), count_job_id(job.job_id, live=True)
    plant_failed_job(kit, fingerprint_job_id(job.job_id), "no fingerprint here")
    plant_failed_job(kit, count_id, "time travel is not available for this table")
    with Hold(kit, live_id) as live_hold:
        with Hold(kit, job.job_id) as export_hold:
            exported_once(kit, wh, job)
            export_hold.release()
            wait_done(kit, job.job_id)
        for _ in range(2):
            pending = pending_on(wh, job)
            assert (pending.job_id, pending.state) == (live_id, "RUNNING")
        live_hold.release()
        result = wh.export(dataclasses.replace(job, deadline=time.monotonic() + 60))
    assert result.row_count == ROWS
    assert count_queries(kit, f"{kit.stack.project}.{dataset}.items") == [live_id]
    jobs = kit.bigquery().list_jobs(max_results=100_000)
    assert sorted(str(j.job_id) for j in jobs if str(j.job_id).startswith(count_id)) == [count_id, live_id]


def test_a_count_jobs_completion_event_finishes_its_run(
    exports_env: ExportsKit, dataset: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(a) The export job's completion event starts ``…_count`` and looks once; a redelivery of
    the request re-attaches to it; the count job's own completion event (a ``…_count`` job,
    mapped to its export job's run folder) writes the manifest. One count query in all."""
    from shared.layout import RunFolder, default_file_name
    from shared.messages import Source

    kit = exports_env
    audit = kit.subscribe(AUDIT_LOG_TOPIC)
    source = Source(mode="table", project=kit.stack.project, dataset=dataset, table="items")
    task = RunFolder("exports", source, dt.date(2025, 1, 8), new_run_id()).export_task(
        "PARQUET", ("box",), default_file_name("items", "PARQUET")
    )
    export_id = export_job_id(task, kit.config)
    count_id = count_job_id(export_id)
    plant_failed_job(kit, fingerprint_job_id(export_id), "no fingerprint here")
    wh = BigQueryWarehouse(kit.bigquery())
    with Hold(kit, count_id) as count_hold:
        with Hold(kit, export_id):
            assert run_export(task, kit.config, wh, time.monotonic() + 0.5) is None  # acked while it runs
        export_done = completion_event(audit, export_id)
        assert finalize_job(export_done, kit.config, wh=wh) is None  # the count job runs
        assert kit.bigquery().get_job(count_id).state == "RUNNING"
        assert run_export(task, kit.config, wh, time.monotonic() + 0.5) is None  # a redelivery: the same job
        assert manifest_of(kit, task) is None
        count_hold.release()
        count_done = completion_event(audit, count_id)
    manifest = finalize_job(count_done, kit.config, wh=wh)
    assert manifest is not None and manifest == manifest_of(kit, task)
    assert manifest.row_count == ROWS and manifest.fingerprint is None and manifest.job_id == export_id
    assert count_queries(kit, f"{kit.stack.project}.{dataset}.items") == [count_id]
