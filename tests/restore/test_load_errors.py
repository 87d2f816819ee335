"""How a failed restore load is reported. BigQuery fails a WRITE_EMPTY load into a table with rows
with reason ``duplicate``, which the client library raises as a 409 Conflict; the local BigQuery
front answers ``invalid`` instead, so this is checked with the library's own LoadJob and
exception classes (no server: the job resource is BigQuery's answer)."""

from __future__ import annotations

from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from shared.errors import PermanentError, TransientError
from shared.gcp import bq_jobs
from shared.restore.load import run_load
from tests.restore.support import manifest

DUPLICATE = {"reason": "duplicate", "message": "Already Exists: Table p:d.t"}


class AnsweredBigQuery:
    """A BigQuery client whose load job is already DONE with BigQuery's ``duplicate`` answer."""

    def __init__(self) -> None:
        self.client = bigquery.Client(project="p", credentials=AnonymousCredentials())

    def load_table_from_uri(self, *args: Any, **kwargs: Any) -> Any:
        resource = {
            "jobReference": {"projectId": "p", "jobId": kwargs["job_id"], "location": "US"},
            "configuration": {"load": {"destinationTable": {"projectId": "p", "datasetId": "d", "tableId": "t"}}},
            "status": {"state": "DONE", "errorResult": DUPLICATE, "errors": [DUPLICATE]},
        }
        return bigquery.LoadJob.from_api_repr(resource, self.client)


def test_a_load_into_a_table_with_rows_says_what_to_do() -> None:
    with pytest.raises(PermanentError) as raised:
        run_load(AnsweredBigQuery(), ["gs://b/x"], "p.d.t", manifest("r1"), "empty", "offsite_restore_r1_abcd")
    assert str(raised.value) == ("restore: --to p.d.t already has rows; use --write-disposition truncate or append")


@pytest.mark.parametrize(
    ("error", "mapped"),
    [
        (gexc.Conflict("Already Exists: Table p:d.t", errors=[DUPLICATE]), PermanentError),
        (gexc.PreconditionFailed("precondition"), PermanentError),
        (gexc.MethodNotImplemented("not implemented"), TransientError),
    ],
)
def test_every_api_error_is_mapped_when_asked(error: gexc.GoogleAPICallError, mapped: type[Exception]) -> None:
    with pytest.raises(mapped) as raised, bq_jobs.mapped_errors("loading p.d.t", every_api_error=True):
        raise error
    assert str(raised.value).startswith("loading p.d.t: ")
    # by default a 409 stays raw: attach_or_start takes it as "the job exists"
    with pytest.raises(type(error)), bq_jobs.mapped_errors("loading p.d.t"):
        raise error
