"""A table's schema changing while its export job runs (docs/exports.md, "The schema a run
records"): the manifest describes the files, i.e. the table as the job started, not as it is
when another invocation (the completion event, the finalize sweep) finishes the run."""

from __future__ import annotations

import io
import uuid
from typing import Any

import pyarrow.parquet as pq
import pytest

from shared.gcp import gcs, job_schema
from shared.topology import VERIFY_RESULTS
from tests.exports.conftest import ExportsKit, manifest_of, table_task
from tests.exports.test_completion_events import completion_event, held_export, sweep_event


@pytest.fixture
def table(kit: ExportsKit) -> str:
    """A table of its own in `sales` (the test alters its schema)."""
    from google.cloud import bigquery

    name = f"evolving_{uuid.uuid4().hex[:8]}"
    client = kit.bigquery()
    ref = f"{kit.stack.project}.sales.{name}"
    schema = [bigquery.SchemaField("id", "INT64", mode="REQUIRED"), bigquery.SchemaField("name", "STRING")]
    created = client.create_table(bigquery.Table(ref, schema=schema))
    assert client.insert_rows_json(created, [{"id": i, "name": f"n{i}"} for i in range(5)]) == []
    return name


def add_column(kit: ExportsKit, table: str) -> None:
    from google.cloud import bigquery

    client = kit.bigquery()
    live = client.get_table(f"{kit.stack.project}.sales.{table}")
    live.schema = [*live.schema, bigquery.SchemaField("added_later", "STRING")]
    client.update_table(live, ["schema"])
    assert [f.name for f in client.get_table(live.reference).schema] == ["id", "name", "added_later"]


def file_columns(kit: ExportsKit, manifest: Any) -> list[str]:
    (first,) = manifest.files
    data = gcs.read_bytes(kit.bucket, manifest.prefix + first.name)
    assert data is not None
    return list(pq.read_schema(io.BytesIO(data)).names)


@pytest.mark.parametrize("finisher", ["completion event", "finalize sweep"])
def test_a_column_added_while_the_job_runs_is_not_in_the_manifest(
    kit: ExportsKit, audit: Any, table: str, finisher: str
) -> None:
    task = table_task(kit, table, "PARQUET")
    with held_export(kit, task) as hold:
        add_column(kit, table)
        hold.release()
        event = completion_event(audit, hold.job_id)
    kit.main.export_table(event if finisher == "completion event" else sweep_event(kit))
    manifest = manifest_of(kit, task)
    assert manifest is not None and manifest.row_count == 5
    assert [f["name"] for f in manifest.schema] == ["id", "name"]  # before: id, name, added_later
    assert file_columns(kit, manifest) == ["id", "name"]  # the files: the table as the job started
    # the fingerprint of the job's snapshot is taken over its own columns (before: it named the
    # added column, the time-travel query failed, and the manifest had none to prove a restore)
    assert manifest.fingerprint is not None and manifest.fingerprint["row_count"] == 5
    job = kit.bigquery().get_job(hold.job_id)
    assert job.labels[job_schema.LABEL] == job_schema.digest(manifest.schema)


def test_a_job_whose_starting_schema_is_not_kept_fails_clearly(kit: ExportsKit, audit: Any, table: str) -> None:
    """The kept schema lost (removed by hand): no schema known to describe the files, so the run
    fails with the reason rather than recording the table's new one."""
    from shared.stages.export import run_folder
    from shared.stages.export_records import SCHEMAS

    results = kit.subscribe(VERIFY_RESULTS)
    task = table_task(kit, table, "PARQUET")
    with held_export(kit, task) as hold:
        add_column(kit, table)
        kept = run_folder(task, kit.config).prefix + SCHEMAS
        removed = [
            gcs.delete(kit.config.state_bucket_name, o.name)
            for o in gcs.list_prefix(kit.config.state_bucket_name, kept)
        ]
        assert removed == [True]
        hold.release()
        event = completion_event(audit, hold.job_id)
    kit.main.export_table(event)
    (result,) = results.pull(lambda m: m.get("run_id") == task.run_id, count=1)
    assert result["status"] == "failed" and result["stage"] == "export_table"
    assert "changed while BigQuery job" in result["reason"] and "run the export again" in result["reason"]
    assert manifest_of(kit, task) is None


def test_a_schema_unchanged_since_the_start_is_the_tables(kit: ExportsKit, audit: Any, table: str) -> None:
    task = table_task(kit, table, "AVRO")
    with held_export(kit, task) as hold:
        hold.release()
        event = completion_event(audit, hold.job_id)
    kit.main.export_table(event)
    manifest = manifest_of(kit, task)
    live = kit.bigquery().get_table(f"{kit.stack.project}.sales.{table}")
    assert manifest is not None and manifest.schema == [f.to_api_repr() for f in live.schema]
