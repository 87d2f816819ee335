"""bqemulator of the stack answers the official client; it started without network access."""

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
    log = Path(bare_stack.component("bigquery").log).read_text()
    assert "spatial_unavailable" not in log and "extensions.duckdb.org" not in log
