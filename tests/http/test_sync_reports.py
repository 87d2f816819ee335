"""POST /sync reports nothing itself: fan_out, which runs the request, reports what it leaves out.

On the bare stack (no function runs: what is reported after the call is the trigger's own)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from devstack.state import StackInfo

pytestmark = pytest.mark.stack


def test_a_table_fan_out_leaves_out_is_not_reported_by_the_trigger_too(
    bare_stack_env: StackInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trigger planned with fan_out's ``plan``, which reports a table whose name offsite
    cannot carry as ``rejected`` (and alerts): every POST /sync reported it once more than
    fan_out does, with no run id. bqemulator refuses such names, so its listing gets one added."""
    from google.cloud import bigquery

    from devstack.sample_data import seed
    from shared import runtime
    from shared.gcp import clients
    from shared.http_trigger import api
    from shared.reporting.history import read

    config = runtime.config()
    client = clients.bigquery_client()
    seed(client, bare_stack_env.project, tables=("products",))
    spaced = f"orders {uuid.uuid4().hex[:8]}"
    real = client.list_tables

    def list_tables(dataset: Any, *args: Any, **kwargs: Any) -> list[Any]:
        ref = {"projectId": bare_stack_env.project, "datasetId": "sales", "tableId": spaced}
        return [*real(dataset, *args, **kwargs), bigquery.table.TableListItem({"tableReference": ref, "type": "TABLE"})]

    monkeypatch.setattr(client, "list_tables", list_tables)
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    reply = api.sync(api.HttpRequest("POST", "/sync/sales"), config, "sales", lambda s: None)
    assert reply.status == 202, reply.body
    assert "products" in reply.body["tables"] and spaced not in reply.body["tables"]
    reported = [r for r in read(config.state_bucket_name, since) if spaced in (r.reason or "")]
    assert reported == []
