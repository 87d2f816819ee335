"""The stack's BigQuery endpoint (the front, bqemulator behind it) answers the official client;
bqemulator started without network access; no environment switch selects a local code path."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from devstack.state import StackInfo


def test_query_through_google_cloud_bigquery(bare_stack: StackInfo) -> None:
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    client = bigquery.Client(
        project=bare_stack.project,
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=bare_stack.bigquery_url),
    )
    dataset = f"t_{uuid.uuid4().hex[:10]}"
    client.create_dataset(dataset)
    table = bigquery.Table(
        f"{bare_stack.project}.{dataset}.orders",
        schema=[bigquery.SchemaField("id", "INT64"), bigquery.SchemaField("order_date", "DATE")],
    )
    client.create_table(table)
    assert (
        client.insert_rows_json(table, [{"id": 1, "order_date": "2025-01-08"}, {"id": 2, "order_date": "2025-01-09"}])
        == []
    )
    job = client.query(
        f"SELECT id FROM `{bare_stack.project}.{dataset}.orders` WHERE order_date = @d",
        job_config=bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("d", "DATE", "2025-01-08")]),
    )
    assert [row["id"] for row in job.result()] == [1]
    client.delete_dataset(dataset, delete_contents=True)


def test_started_offline_without_spatial_extension(bare_stack: StackInfo) -> None:
    log = Path(bare_stack.component("bqemulator").log).read_text()
    assert "spatial_unavailable" not in log and "extensions.duckdb.org" not in log


def test_clients_get_the_front_and_no_code_path_switch(bare_stack: StackInfo) -> None:
    front, emulator = bare_stack.component("bigquery"), bare_stack.component("bqemulator")
    assert bare_stack.env["OFFSITE_BIGQUERY_ENDPOINT"] == bare_stack.bigquery_url == f"http://127.0.0.1:{front.port}"
    assert bare_stack.bqemulator_url == f"http://127.0.0.1:{emulator.port}" != bare_stack.bigquery_url
    assert "devstack.bqfront" in Path(front.log).read_text()  # the front's own start line
    env_file = bare_stack.env_file.read_text()
    for retired in ("OFFSITE_WAREHOUSE", "OFFSITE_BIGQUERY_GRPC"):
        assert retired not in bare_stack.env and retired not in env_file


def test_a_long_export_finishes_through_the_stacks_audit_log_event(
    stack_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Front → topic bigquery-audit-log → push → relay → export_table's functions-framework process:
    the function acknowledged the request while the job ran; the job's completion event wrote the manifest."""
    import datetime as dt
    import json
    import time
    import urllib.request

    from google.cloud import bigquery

    from shared.gcp import clients, gcs
    from shared.gcp.bigquery import job_id_for
    from shared.layout import RunFolder
    from shared.messages import Source
    from shared.topology import TABLE_EXPORTS
    from tests.conftest import _apply_env

    monkeypatch.setenv("OFFSITE_EXPORT_BUDGET_S", "1")  # inherited by the function processes
    info = stack_factory(functions=["export_table"], without=["sftp", "box", "drive", "webhook"])
    _apply_env(monkeypatch, info)
    client = clients.bigquery_client()
    client.create_dataset("sales", exists_ok=True)
    table = f"tiny_{uuid.uuid4().hex[:8]}"
    client.create_table(bigquery.Table(f"{info.project}.sales.{table}", schema=[bigquery.SchemaField("id", "INT64")]))
    assert client.insert_rows_json(f"{info.project}.sales.{table}", [{"id": 1}, {"id": 2}, {"id": 3}]) == []

    run_id = "e" + uuid.uuid4().hex[:12]
    source = Source(mode="table", project=info.project, dataset="sales", table=table)
    date = dt.date(2025, 1, 8)
    folder = RunFolder("exports", source, date, run_id)
    task = folder.export_task("CSV", ("box",), f"{table}_{{YYYYMMDD}}-*.csv.gz")
    job_id = job_id_for(run_id, source, folder=folder.prefix)  # as export_job_id names it

    def front(method: str, path: str, body: dict[str, Any] | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(info.bigquery_url + path, data=data, method=method)
        req.add_header("content-type", "application/json")
        urllib.request.urlopen(req, timeout=10).close()

    def until(check: Any, what: str, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not check():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.5)

    log = Path(info.component("export_table").log)
    front("POST", "/_bqfront/holds", {"prefix": job_id})
    try:
        info.pubsub_admin().publish(TABLE_EXPORTS, task.to_json())
        until(lambda: "its completion event" in log.read_text() and run_id in log.read_text(), "export_table to ack")
        assert client.get_job(job_id).state == "RUNNING"
        assert gcs.read_bytes(info.bucket, folder.manifest_name) is None
    finally:
        front("DELETE", f"/_bqfront/holds/{job_id}")
    until(lambda: gcs.read_bytes(info.bucket, folder.manifest_name) is not None, "the manifest")
    manifest = json.loads(gcs.read_bytes(info.bucket, folder.manifest_name) or b"{}")
    assert manifest["job_id"] == job_id and manifest["row_count"] == 3
    handled = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any(
        entry.get("event_type") == "google.cloud.audit.log.v1.written" and entry.get("run_id") == run_id
        for entry in handled
    )


def test_bqemulator_storage_follows_the_memory_limit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from devstack.errors import StackError
    from devstack.launches import ENV_BQ_MEMORY_LIMIT, bigquery_storage

    monkeypatch.delenv(ENV_BQ_MEMORY_LIMIT, raising=False)
    assert bigquery_storage(tmp_path) == ["--ephemeral"]
    monkeypatch.setenv(ENV_BQ_MEMORY_LIMIT, "4GB")
    assert bigquery_storage(tmp_path) == ["--persistent", "--data-dir", str(tmp_path / "duckdb")]
    monkeypatch.setenv(ENV_BQ_MEMORY_LIMIT, "lots")
    with pytest.raises(StackError, match="OFFSITE_DEV_BQ_MEMORY_LIMIT='lots' is not a size"):
        bigquery_storage(tmp_path)


def test_a_memory_limit_caps_a_file_backed_duckdb(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The launcher's patch, on bqemulator's own engine: the store is a file, DuckDB capped at the limit."""
    import asyncio

    from bqemulator.config import PersistenceMode, Settings
    from bqemulator.storage.engine import DuckDBEngine

    from devstack.bq_launcher import patch_engine

    for name in ("_load_spatial", "_apply_session_pragmas"):  # restored after the test
        monkeypatch.setattr(DuckDBEngine, name, getattr(DuckDBEngine, name))
    patch_engine("64MiB")
    engine = DuckDBEngine(Settings(persistence_mode=PersistenceMode.PERSISTENT, data_dir=tmp_path))
    asyncio.run(engine.start())
    try:
        (limit,) = engine.execute("SELECT current_setting('memory_limit')").fetchone()
        (timezone,) = engine.execute("SELECT current_setting('TimeZone')").fetchone()
    finally:
        asyncio.run(engine.stop())
    assert (limit, timezone) == ("64.0 MiB", "UTC")  # bqemulator's own pragmas still run
    assert (tmp_path / "bqemulator.duckdb").stat().st_size > 0
