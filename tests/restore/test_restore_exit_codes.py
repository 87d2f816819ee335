"""``offsite restore``'s exit status when BigQuery refuses: 1 (the input was fine, the service
refused: docs/operations.md "Exit status"), not 2 (bad input) as every PermanentError was. The
local stack has no IAM (it never answers 403), so BigQuery's answers are the client library's own
LoadJob resources and google.api_core exceptions (no server), mapped by offsite's own code."""

from __future__ import annotations

from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from offsite.cli.restore import exit_code
from shared.errors import OffsiteError, PermanentError, RejectedInput, TransientError
from shared.gcp import bq_jobs
from shared.gcp.gcs import ObjectMissing
from shared.restore.load import parse_target, run_load
from shared.restore.stage import DamagedFile, OutOfTime
from tests.restore.support import manifest

ACCESS_DENIED = {
    "reason": "accessDenied",
    "message": "Access Denied: Dataset p:d: Permission bigquery.tables.create denied",
}
NOT_FOUND = {"reason": "notFound", "message": "Not found: Dataset p:d"}
DUPLICATE = {"reason": "duplicate", "message": "Already Exists: Table p:d.t"}


class AnsweredBigQuery:
    """A BigQuery client whose load job insert is answered with ``refusal`` (an api_core
    exception), or whose load job is already DONE with BigQuery's ``error`` result."""

    def __init__(self, error: dict[str, str] | None = None, refusal: Exception | None = None) -> None:
        self.client = bigquery.Client(project="p", credentials=AnonymousCredentials())
        self.error, self.refusal = error, refusal

    def load_table_from_uri(self, *args: Any, **kwargs: Any) -> Any:
        if self.refusal is not None:
            raise self.refusal
        resource = {
            "jobReference": {"projectId": "p", "jobId": kwargs["job_id"], "location": "US"},
            "configuration": {"load": {"destinationTable": {"projectId": "p", "datasetId": "d", "tableId": "t"}}},
            "status": {"state": "DONE", "errorResult": self.error, "errors": [self.error]},
        }
        return bigquery.LoadJob.from_api_repr(resource, self.client)


def load_error(client: AnsweredBigQuery) -> OffsiteError:
    with pytest.raises(OffsiteError) as raised:
        run_load(client, ["gs://b/x"], "p.d.t", manifest("r1"), "empty", "offsite_restore_r1_abcd")
    return raised.value


def test_a_load_job_bigquery_refused_is_exit_1() -> None:
    """The load job fails with BigQuery's accessDenied (403 on the target dataset)."""
    error = load_error(AnsweredBigQuery(ACCESS_DENIED))
    assert isinstance(error, PermanentError) and "access denied" in str(error)
    assert exit_code(error, loading=True) == 1


def test_a_load_insert_bigquery_refused_is_exit_1() -> None:
    """jobs.insert itself answered 403 accessDenied."""
    refusal = gexc.Forbidden("Access Denied: Project p", errors=[ACCESS_DENIED])
    error = load_error(AnsweredBigQuery(refusal=refusal))
    assert isinstance(error, PermanentError) and "access denied" in str(error)
    assert exit_code(error, loading=True) == 1


@pytest.mark.parametrize(("answer", "says"), [(DUPLICATE, "already has rows"), (NOT_FOUND, "not found")])
def test_a_target_that_cannot_be_loaded_as_asked_is_bad_input(answer: dict[str, str], says: str) -> None:
    """A table with rows under ``empty`` (documented exit 2), a --to dataset that does not exist."""
    error = load_error(AnsweredBigQuery(answer))
    assert isinstance(error, RejectedInput) and says in str(error) and "--to p.d.t" in str(error)
    assert exit_code(error, loading=True) == 2


def test_bigquery_rate_limits_stay_try_again() -> None:
    with pytest.raises(TransientError) as raised, bq_jobs.mapped_errors("loading p.d.t", every_api_error=True):
        raise gexc.Forbidden("Exceeded rate limits", errors=[{"reason": "rateLimitExceeded"}])
    assert exit_code(raised.value, loading=True) == 1


def test_the_rest_of_the_policy_is_kept() -> None:
    with pytest.raises(PermanentError) as bad_target:
        parse_target("not-a-table")
    assert exit_code(bad_target.value, loading=False) == 2
    not_found = RejectedInput("restore: no manifest of run 'r1' at box")  # locate.find_run
    assert exit_code(not_found, loading=False) == 2
    refused = PermanentError("box: 403 access_denied_insufficient_permissions listing GCP/bigquery")
    assert exit_code(refused, loading=False) == 1  # the destination refused: not the caller's mistake
    assert exit_code(ObjectMissing("staging t.json at gs://nope/x: not found"), loading=True) == 2
    assert exit_code(ValueError("bad"), loading=True) == 2
    for failed in (DamagedFile("damaged"), OutOfTime("did not finish"), TransientError("down")):
        assert exit_code(failed, loading=False) == 1 and exit_code(failed, loading=True) == 1
