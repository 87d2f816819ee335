"""The restore's load job on the local BigQuery front (bare stack: fake-gcs-server, bqfront,
bqemulator): a wait that runs out ends the restore once, and a job whose insert answer was lost
is waited for, not started twice."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from devstack.state import StackInfo
from shared.gcp import clients, gcs
from shared.restore.load import run_load
from shared.restore.stage import OutOfTime
from tests.restore.support import SCHEMA, front, manifest

pytestmark = pytest.mark.stack
BUCKET = "offsite-restore-load"


@pytest.fixture
def staged(bare_stack_env: StackInfo) -> Iterator[tuple[StackInfo, list[str], str]]:
    """A staged NDJSON file of two rows, and a fresh target table name."""
    storage = clients.storage_client()
    if storage.lookup_bucket(BUCKET) is None:
        storage.create_bucket(BUCKET)
    name = f"staged/{uuid.uuid4().hex}.json"
    gcs.write(BUCKET, name, b'{"id": 1, "s": "a"}\n{"id": 2, "s": null}\n')
    clients.bigquery_client().create_dataset(f"{bare_stack_env.project}.restored", exists_ok=True)
    yield bare_stack_env, [gcs.uri(BUCKET, name)], f"{bare_stack_env.project}.restored.load_{uuid.uuid4().hex[:8]}"


def test_a_load_still_running_when_the_wait_ends_is_out_of_time_at_once(
    staged: tuple[StackInfo, list[str], str],
) -> None:
    """The library's TimeoutError was taken for a transient failure: the wait was retried three
    times, each as long as the whole budget (a drill ran past its 540 s), and ended as a
    TransientError ("try again") instead of OutOfTime. The front keeps the job RUNNING."""
    info, uris, target = staged
    job_id = f"offsite_restore_rload_{uuid.uuid4().hex[:8]}"
    front(info, "POST", "/_bqfront/holds", {"prefix": job_id})
    try:
        with pytest.raises(OutOfTime) as raised:
            run_load(clients.bigquery_client(), uris, target, manifest("rload"), "empty", job_id, timeout_s=1)
    finally:
        front(info, "DELETE", f"/_bqfront/holds/{job_id}")
    assert f"load job {job_id} into {target} still running" in str(raised.value)


def test_a_load_job_started_by_an_earlier_try_of_the_insert_is_waited_for(
    staged: tuple[StackInfo, list[str], str],
) -> None:
    """An insert whose answer was lost is sent again (the library's retry, then ours) and BigQuery
    answers 409: the job exists. That was a PermanentError (exit 2) while the job loaded the rows;
    the job is now waited for, and an ``append`` loads the rows once."""
    from google.cloud import bigquery

    _info, uris, target = staged
    client = clients.bigquery_client()
    job_id = f"offsite_restore_rload_{uuid.uuid4().hex[:8]}"
    config = bigquery.LoadJobConfig(
        source_format="NEWLINE_DELIMITED_JSON",
        schema=[bigquery.SchemaField.from_api_repr(f) for f in SCHEMA],
        write_disposition="WRITE_APPEND",
    )
    client.load_table_from_uri(uris, target, job_config=config, job_id=job_id)  # the try whose answer was lost
    job = run_load(client, uris, target, manifest("rload"), "append", job_id)
    assert job.job_id == job_id and job.state == "DONE" and not job.error_result
    assert client.get_table(target).num_rows == 2  # loaded once
