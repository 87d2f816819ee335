"""A dead letter's ``failed`` results survive a failed publish, and a dead-lettered export request
keeps its run id (shared/stages/dead_letters.py)."""

from __future__ import annotations

import json
import uuid

import pytest

from shared.errors import TransientError
from shared.gcp import gcs
from shared.messages import Source
from shared.topology import VERIFY_RESULTS
from tests.pubsub_outage import PublishOutage
from tests.verify.conftest import VerifyStack
from tests.verify.test_dead_letters import FILES, dead_letter_event


@pytest.mark.parametrize("published_before_the_outage", [0, 1])
def test_a_dead_letter_whose_report_fails_is_reported_by_the_redelivery(
    vstack: VerifyStack, monkeypatch: pytest.MonkeyPatch, published_before_the_outage: int
) -> None:
    """The once-only claim was taken before publishing and kept when publishing failed: the
    redelivery saw it and reported nothing. Each result has its claim now, released when its
    publish fails: the redelivery reports what was not reported, and nothing twice."""
    run = vstack.new_run(FILES, ("memory", "sftp:local"), manifest=False)
    task = gcs.read_bytes(vstack.bucket, run.folder.run_name)
    assert task is not None
    dead = dead_letter_event(vstack, "export-table-table-exports-dlq", task, "export-table-table-exports")
    outage = PublishOutage(monkeypatch, VERIFY_RESULTS, allow=published_before_the_outage)
    with pytest.raises(TransientError):
        vstack.run_verify(dead)  # raised: Pub/Sub delivers the dead letter again
    assert outage.refused > 0
    assert len(vstack.results_for(run)) == published_before_the_outage
    outage.end()
    vstack.run_verify(dead)  # the redelivery
    vstack.run_verify(dead)  # and a duplicate of it
    results = vstack.results_for(run)
    assert sorted((str(r.destination), r.status) for r in results) == [("memory", "failed"), ("sftp:local", "failed")]


def test_a_dead_lettered_export_request_names_its_run_and_each_table(vstack: VerifyStack) -> None:
    """A dataset-mode request made a table Source without a table: invalid, so the result named
    no run, and GET /runs/<id> showed the run pending for ever. A query request named no source."""
    project = vstack.info.project
    per_table, whole_dataset, query = ("r" + uuid.uuid4().hex[:12] for _ in range(3))
    request = {"dataset": "sales", "tables": ["orders", "products"], "run_id": per_table, "date": "2025-01-08"}
    whole = {"dataset": "sales", "run_id": whole_dataset, "date": "2025-01-08"}
    daily = {"export": "orders_daily", "run_id": query, "date": "2025-01-08"}
    for body in (request, whole, daily):
        data = json.dumps(body).encode()
        vstack.run_verify(dead_letter_event(vstack, "fan-out-export-requests-dlq", data, "fan-out-export-requests"))
    results = [r for r in vstack.results() if r.run_id in (per_table, whole_dataset, query)]
    assert sorted((r.run_id, r.source.label if r.source else "", r.date, r.stage, r.status) for r in results) == sorted(
        [
            (per_table, "sales.orders", "2025-01-08", "fan_out", "failed"),
            (per_table, "sales.products", "2025-01-08", "fan_out", "failed"),
            (whole_dataset, "", "2025-01-08", "fan_out", "failed"),
            (query, "export:orders_daily", "2025-01-08", "fan_out", "failed"),
        ]
    )
    assert {r.source for r in results if r.source} == {
        Source(mode="table", project=project, dataset="sales", table="orders"),
        Source(mode="table", project=project, dataset="sales", table="products"),
        Source(mode="query", project=project, export="orders_daily"),
    }
    assert all(
        "dead-lettered after 5 delivery attempts on fan-out-export-requests" in (r.reason or "") for r in results
    )
