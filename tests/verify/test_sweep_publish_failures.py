"""A result claimed once (by its marker) survives a failed publish: the claim is released, and
the next sweep (or trigger) publishes it — for every kind the sweep reports without a
comparison (incomplete export, rejected manifest, failed destination) and for the rejected
manifest an automatic trigger reports."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

import pytest

from shared import retry
from shared.errors import TransientError
from shared.runtime import config
from shared.topology import VERIFY_RESULTS
from shared.verify.sweep import sweep
from tests.pubsub_outage import PublishOutage
from tests.verify.conftest import Run, VerifyStack

pytestmark = pytest.mark.stack

FILES = {"orders_20250108-000000000000.parquet": b"PAR1" + b"x" * 500}


def later(hours: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)


def export_never_finished(vstack: VerifyStack) -> Run:
    return vstack.new_run(FILES, ("memory",), manifest=False)


def malformed_manifest(vstack: VerifyStack) -> Run:
    run = vstack.new_run(FILES, ("memory",), manifest=False)
    vstack.write_manifest(run, raw=b"{ this is not json")
    return run


def unknown_destination(vstack: VerifyStack) -> Run:
    return vstack.new_run(FILES, ("sftp:nosuch",))  # routed to a partner the config does not have


@pytest.mark.parametrize(
    "make_run, status",
    [(export_never_finished, "incomplete"), (malformed_manifest, "rejected"), (unknown_destination, "failed")],
)
def test_a_sweep_result_whose_publish_failed_is_published_by_the_next_sweep(
    vstack: VerifyStack, monkeypatch: pytest.MonkeyPatch, make_run: Callable[[VerifyStack], Run], status: str
) -> None:
    run = make_run(vstack)
    outage = PublishOutage(monkeypatch, VERIFY_RESULTS)
    with retry.waits_end_by(time.monotonic() + 2), pytest.raises(TransientError):
        sweep(config(), now=later(3))  # re-raised: the sweep request is redelivered
    assert outage.refused > 0 and vstack.results_for(run) == []
    outage.end()
    sweep(config(), now=later(3.5))
    sweep(config(), now=later(4))  # and only once
    assert [r.status for r in vstack.results_for(run)] == [status]


def test_a_rejected_manifest_whose_report_failed_is_reported_by_a_later_trigger(
    vstack: VerifyStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = vstack.new_run(FILES, ("memory",), manifest=False)
    vstack.write_manifest(run, raw=b"{ this is not json")
    receipts = vstack.deliver_all(run)
    outage = PublishOutage(monkeypatch, VERIFY_RESULTS)
    with retry.waits_end_by(time.monotonic() + 2):
        vstack.manifest_finalized(run)  # rejected: acked, its report could not be published
    assert outage.refused > 0 and vstack.results_for(run) == []
    outage.end()
    for receipt in receipts:
        vstack.receipt(receipt)
    vstack.manifest_finalized(run)
    assert [r.status for r in vstack.results_for(run)] == ["rejected"]
