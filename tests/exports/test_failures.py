"""A failed export is reported once (``failed``/``rejected`` on verify-results), acked, never manifested."""

from __future__ import annotations

import pytest

from shared.gcp import gcs
from shared.messages import Source
from shared.topology import TABLE_EXPORTS, VERIFY_RESULTS
from tests.exports.conftest import ExportsKit, manifest_of, table_task


def _result_for(puller, run_id: str) -> dict:
    (result,) = puller.pull(lambda m: m.get("run_id") == run_id, count=1)
    return result


def test_csv_of_a_nested_table_fails_like_bigquery_and_is_reported(exports_env: ExportsKit) -> None:
    kit = exports_env
    results = kit.subscribe(VERIFY_RESULTS)
    task = table_task(kit, "customers", "CSV")
    kit.main.export_table(kit.table_export_event(task))  # returns: the message is acked
    result = _result_for(results, task.run_id)
    assert result["status"] == "failed" and result["stage"] == "export_table"
    assert "nested schema" in result["reason"] and "Field: tags" in result["reason"]
    assert result["source"] == {"mode": "table", "project": kit.stack.project, "dataset": "sales", "table": "customers"}
    assert manifest_of(kit, task) is None
    names = [o.name for o in gcs.list_prefix(kit.bucket, task.prefix)]
    assert names == [task.prefix + "_run.json"]  # no data files, no manifest
    assert len(results.drain()) == 1  # reported once, not in a loop


def test_missing_table_is_a_failed_job_with_bigquerys_reason(exports_env: ExportsKit) -> None:
    kit = exports_env
    results = kit.subscribe(VERIFY_RESULTS)
    task = table_task(kit, "orders", "PARQUET")
    ghost = task.model_copy(
        update={
            "source": Source(mode="table", project=kit.stack.project, dataset="sales", table="ghost"),
            "prefix": task.prefix.replace("/orders/", "/ghost/"),
            "file_name": "ghost_{YYYYMMDD}-*.parquet",
        }
    )
    kit.main.export_table(kit.table_export_event(ghost))
    result = _result_for(results, ghost.run_id)
    assert result["status"] == "failed"
    assert "not found" in result["reason"].lower() and "ghost" in result["reason"]
    assert manifest_of(kit, ghost) is None


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"prefix": "exports/sales/orders/20250108/other/"}, "is not this run's folder"),
        ({"prefix": "../../etc/"}, "is not this run's folder"),
        ({"destinations": ("sftp:nobody",)}, "'sftp:nobody' is not a configured destination"),
        ({"file_name": "../x-*.parquet"}, "must contain exactly one '*', no '/'"),
    ],
)
def test_table_export_that_fan_out_could_not_have_made_is_rejected(
    exports_env: ExportsKit, change: dict, needle: str
) -> None:
    kit = exports_env
    results = kit.subscribe(VERIFY_RESULTS)
    task = table_task(kit, "orders", "PARQUET").model_copy(update=change)
    kit.main.export_table(kit.table_export_event(task))
    result = _result_for(results, task.run_id)
    assert result["status"] == "rejected" and needle in result["reason"]
    assert gcs.list_prefix(kit.bucket, task.prefix) == []
    assert gcs.list_prefix(kit.bucket, f"exports/sales/orders/20250108/{task.run_id}/") == []


def test_table_export_of_another_project_is_rejected(exports_env: ExportsKit) -> None:
    kit = exports_env
    results = kit.subscribe(VERIFY_RESULTS)
    task = table_task(kit, "orders", "PARQUET")
    task = task.model_copy(update={"source": task.source.model_copy(update={"project": "someone-else"})})
    kit.main.export_table(kit.table_export_event(task))
    result = _result_for(results, task.run_id)
    assert result["status"] == "rejected" and "'someone-else' is not the configured project" in result["reason"]


def test_garbage_on_table_exports_is_rejected_not_retried(exports_env: ExportsKit) -> None:
    kit = exports_env
    results = kit.subscribe(VERIFY_RESULTS)
    event = kit.table_export_event(b'{"run_id": "x", "oops"')
    kit.main.export_table(event)
    (result,) = results.pull(lambda m: m.get("message_id") == event["id"], count=1)
    assert result["status"] == "rejected" and "not valid JSON" in result["reason"]


def test_failed_request_publishes_no_table_exports(exports_env: ExportsKit) -> None:
    kit = exports_env
    out = kit.subscribe(TABLE_EXPORTS)
    kit.main.fan_out(kit.request_event({"dataset": "sales", "tables": ["orders", "ghost"]}))
    assert out.drain() == []  # all or nothing: a bad table rejects the whole request
