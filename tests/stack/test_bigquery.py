"""The stack's BigQuery endpoint (the front, bqemulator behind it) answers the official client;
bqemulator started without network access; no environment switch selects a local code path."""

from __future__ import annotations

import uuid
from pathlib import Path

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
