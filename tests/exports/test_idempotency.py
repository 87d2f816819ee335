"""Redelivery never starts a second export, never duplicates or rewrites files."""

from __future__ import annotations

import datetime as dt
import time
import uuid

from shared.gcp import gcs
from shared.gcp.bigquery import BigQueryWarehouse, ExportJob, TableRef
from shared.layout import RunFolder
from shared.messages import TableExport
from shared.stages.export import export_job_id, file_pattern, run_folder
from shared.topology import TABLE_EXPORTS, VERIFY_RESULTS
from tests.exports.conftest import ExportsKit, manifest_of, query_task, table_task
from tests.threads import together


def _objects(kit: ExportsKit, prefix: str) -> dict[str, int]:
    return {o.name: o.generation for o in gcs.list_prefix(kit.bucket, prefix)}


def test_redelivered_table_export_writes_nothing_new(exports_env: ExportsKit) -> None:
    kit = exports_env
    task = table_task(kit, "orders", "PARQUET")
    event = kit.table_export_event(task)
    kit.main.export_table(event)
    first = _objects(kit, task.prefix)
    assert task.prefix + "_manifest.json" in first and len(first) >= 5  # _run.json, manifest, >= 3 shards
    kit.main.export_table(event)  # the same message again
    kit.main.export_table(kit.table_export_event(task))  # or the same task under another message id
    assert _objects(kit, task.prefix) == first


def test_export_resumes_when_files_exist_but_no_manifest(exports_env: ExportsKit) -> None:
    """A crash after the files but before the manifest: the retry re-attaches to the finished job,
    keeps its files and adds the manifest."""
    kit = exports_env
    task = table_task(kit, "products", "AVRO")
    folder = run_folder(task, kit.config)
    job = ExportJob(
        job_id=export_job_id(task, kit.config),
        source=TableRef(kit.stack.project, "sales", "products"),
        bucket=kit.bucket,
        prefix=folder.prefix,
        file_pattern=file_pattern(task),
        format="AVRO",
        deadline=time.monotonic() + 300,
    )
    BigQueryWarehouse().export(job)  # the job ran; the function "crashed" before the manifest
    before = _objects(kit, task.prefix)
    assert list(before) == [task.prefix + "products_20250108-000000000000.avro"]
    kit.main.export_table(kit.table_export_event(task))
    after = _objects(kit, task.prefix)
    assert {k: v for k, v in after.items() if k in before} == before  # same generations: not rewritten
    manifest = manifest_of(kit, task)
    assert [f.object for f in manifest.files] == list(before)


def test_time_budget_exceeded_is_acked_and_a_redelivery_completes(exports_env: ExportsKit, monkeypatch) -> None:
    kit = exports_env
    task = table_task(kit, "customers", "PARQUET")
    monkeypatch.setenv("OFFSITE_EXPORT_BUDGET_S", "0.000001")
    kit.main.export_table(kit.table_export_event(task))  # acked: the job's completion event takes over
    assert manifest_of(kit, task) is None  # never a manifest for an incomplete export
    assert task.prefix + "_run.json" in _objects(kit, task.prefix)
    monkeypatch.delenv("OFFSITE_EXPORT_BUDGET_S")
    kit.main.export_table(kit.table_export_event(task))
    assert manifest_of(kit, task).row_count == 1000


def test_concurrent_deliveries_of_one_task_write_one_set_of_files(exports_env: ExportsKit) -> None:
    kit = exports_env
    task = table_task(kit, "orders", "PARQUET")

    def deliver() -> None:
        kit.main.export_table(kit.table_export_event(task))

    together(deliver, deliver)  # raises what either raised
    objects = _objects(kit, task.prefix)
    data = sorted(n for n in objects if not n.rsplit("/", 1)[1].startswith("_"))
    manifest = manifest_of(kit, task)
    assert [f.object for f in manifest.files] == data
    assert manifest.row_count == 200_000


def test_redelivered_request_runs_each_table_once(exports_env: ExportsKit) -> None:
    kit = exports_env
    out = kit.subscribe(TABLE_EXPORTS)
    event = kit.request_event({"dataset": "sales", "tables": ["products", "customers"], "format": "AVRO"})
    kit.main.fan_out(event)
    kit.main.fan_out(event)
    bodies = out.pull(lambda m: True, count=4)
    tasks = [TableExport.from_json(_strip(b)) for b in bodies]
    assert len(tasks) == 4 and len(set(tasks)) == 2  # the same two table exports, twice
    for task in tasks:
        kit.main.export_table(kit.table_export_event(task))
    for task in set(tasks):
        names = [n for n in _objects(kit, task.prefix) if not n.rsplit("/", 1)[1].startswith("_")]
        assert names == [task.prefix + f"{task.source.table}_{task.date:%Y%m%d}-000000000000.avro"]
        assert manifest_of(kit, task).files[0].object == names[0]


def test_run_id_reused_with_other_settings_is_rejected(exports_env: ExportsKit) -> None:
    kit = exports_env
    results = kit.subscribe(VERIFY_RESULTS)
    task = table_task(kit, "products", "PARQUET")
    kit.main.export_table(kit.table_export_event(task))
    before = _objects(kit, task.prefix)
    other = task.model_copy(update={"destinations": ("sftp:local",)})
    kit.main.export_table(kit.table_export_event(other))  # acked, reported
    (result,) = results.pull(lambda m: m.get("run_id") == task.run_id, count=1)
    assert result["status"] == "rejected" and result["stage"] == "export_table"
    assert "already names a different export" in result["reason"]
    assert _objects(kit, task.prefix) == before


def _strip(body: dict) -> bytes:
    import json

    return json.dumps({k: v for k, v in body.items() if k != "_attributes"}).encode()


def test_a_new_run_of_the_same_table_and_day_leaves_the_old_run_alone(exports_env: ExportsKit) -> None:
    kit = exports_env
    first, second = table_task(kit, "products", "PARQUET"), table_task(kit, "products", "PARQUET")
    kit.main.export_table(kit.table_export_event(first))
    before = _objects(kit, first.prefix)
    kit.main.export_table(kit.table_export_event(second))
    assert _objects(kit, first.prefix) == before
    assert first.prefix != second.prefix and manifest_of(kit, second) is not None


def test_a_run_id_reused_for_another_day_exports_that_day(exports_env: ExportsKit) -> None:
    """The job id follows the run folder, date included: the second day is its own job, not a
    re-attach to the first day's (whose files are in the other folder)."""
    kit = exports_env
    run_id = "t" + uuid.uuid4().hex[:12]
    first = query_task(kit, dt.date(2025, 1, 8), run_id=run_id)
    second = query_task(kit, dt.date(2025, 1, 9), run_id=run_id)
    kit.main.export_table(kit.table_export_event(first))
    kit.main.export_table(kit.table_export_event(second))
    day1, day2 = manifest_of(kit, first), manifest_of(kit, second)
    assert day1 is not None and day2 is not None and day1.job_id != day2.job_id
    assert day2.row_count == kit.source_count("orders", where_date=second.date)
    assert [f.object for f in day2.files] == [n for n in _objects(kit, second.prefix) if "/Orders_20250109-" in n]


def test_a_table_run_id_reused_for_another_day_exports_that_day(exports_env: ExportsKit) -> None:
    kit = exports_env
    first = table_task(kit, "products", "AVRO")
    day2 = RunFolder("exports", first.source, dt.date(2025, 1, 9), first.run_id)
    second = day2.export_task("AVRO", first.destinations, first.file_name)
    kit.main.export_table(kit.table_export_event(first))
    kit.main.export_table(kit.table_export_event(second))
    day1, day2 = manifest_of(kit, first), manifest_of(kit, second)
    assert day1 is not None and day2 is not None and day1.job_id != day2.job_id
    assert [f.object for f in day2.files] == [second.prefix + "products_20250109-000000000000.avro"]
