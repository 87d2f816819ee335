"""The restore's proof on the local BigQuery front (bare stack: fake-gcs-server, bqfront,
bqemulator): its fingerprint query is ONE job under the caller's id, waited for until the
caller's deadline. A wait that ran out was taken for a transient failure and the query started
again (each time a full scan of the table), and a table whose query took longer than 120 s could
never be proven."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.state import StackInfo
from shared.gcp import clients, fingerprint_job
from shared.gcp.bigquery import BigQueryWarehouse
from shared.restore.load import prove
from shared.restore.stage import OutOfTime
from tests.restore.support import SCHEMA, front, manifest

pytestmark = pytest.mark.stack


class CountingClient:
    """The stack's BigQuery client, counting the query jobs started through it; ``on_query`` runs
    once each has been inserted (its answer in hand)."""

    def __init__(self, client: Any, on_query: Any = None) -> None:
        self.client = client
        self.on_query = on_query
        self.queries: list[str] = []

    def query(self, *args: Any, **kwargs: Any) -> Any:
        job = self.client.query(*args, **kwargs)
        self.queries.append(job.job_id)
        if self.on_query is not None:
            self.on_query()
        return job

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


@pytest.fixture
def restored(bare_stack_env: StackInfo) -> Iterator[tuple[StackInfo, str]]:
    """A restored table of two rows."""
    from google.cloud import bigquery

    client = clients.bigquery_client()
    client.create_dataset(f"{bare_stack_env.project}.restored", exists_ok=True)
    target = f"{bare_stack_env.project}.restored.proof_{uuid.uuid4().hex[:8]}"
    client.create_table(bigquery.Table(target, schema=[bigquery.SchemaField.from_api_repr(f) for f in SCHEMA]))
    client.insert_rows_json(target, [{"id": 1, "s": "a"}, {"id": 2, "s": None}])
    yield bare_stack_env, target
    client.delete_table(target, not_found_ok=True)


def test_a_proof_still_running_at_the_deadline_is_out_of_time_once(restored: tuple[StackInfo, str]) -> None:
    """The front keeps the proof's query RUNNING past the deadline: OutOfTime naming the job,
    and no second query job."""
    info, target = restored
    job_id = f"offsite_restore_rproof_{uuid.uuid4().hex[:8]}_proof"
    client = CountingClient(clients.bigquery_client())
    front(info, "POST", "/_bqfront/holds", {"prefix": job_id})
    try:
        with pytest.raises(OutOfTime) as raised:
            prove(BigQueryWarehouse(client), target, manifest("rproof"), job_id=job_id, deadline=time.monotonic() + 1)
    finally:
        front(info, "DELETE", f"/_bqfront/holds/{job_id}")
    assert str(raised.value).startswith("did not finish within the budget: ")
    assert f"fingerprint query {job_id} of {target} still running" in str(raised.value)
    assert client.queries == [job_id]


def test_a_proof_whose_query_is_released_before_the_deadline_is_given(restored: tuple[StackInfo, str]) -> None:
    """Held RUNNING when inserted, released at once: the same job is waited for and proves the table."""
    info, target = restored
    expected = fingerprint_job.compute(clients.bigquery_client(), f"`{target}`", [], SCHEMA, None, target)
    assert expected is not None
    job_id = f"offsite_restore_rproof_{uuid.uuid4().hex[:8]}_proof"
    client = CountingClient(clients.bigquery_client(), lambda: front(info, "DELETE", f"/_bqfront/holds/{job_id}"))
    front(info, "POST", "/_bqfront/holds", {"prefix": job_id})
    proof = prove(
        BigQueryWarehouse(client), target, manifest("rproof", expected), job_id=job_id, deadline=time.monotonic() + 120
    )
    assert proof.equal and proof.fingerprint_checked and proof.rows == 2, proof.problems
    assert client.queries == [job_id]
