"""A sync longer than ``lease_s`` keeps its lease (renewed while it works), or stops clearly when it lost it."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from shared.ingest.state import LeaseKeeper, LeaseLost, SyncState
from tests.ingest.conftest import IngestKit


def test_a_run_renews_its_lease_so_the_next_scheduled_run_cannot_take_it(ingest: IngestKit) -> None:
    """A sync longer than lease_s used to lose its lease to the next run and be rolled back at the apply."""
    state = SyncState(ingest.client, ingest.stack.project, ingest.dataset)
    state.ensure()
    assert state.acquire("messages", "runA", 24)
    lease = LeaseKeeper(state, "messages", "runA", 24)
    first_until = state.get("messages").lease_until
    assert first_until is not None
    time.sleep(8.5)  # past a third of the lease: the next keep() renews it
    lease.keep()
    renewed_until = state.get("messages").lease_until
    assert renewed_until is not None and renewed_until > first_until
    while dt.datetime.now(dt.UTC) < first_until + dt.timedelta(seconds=1):  # the lease as first taken ran out
        time.sleep(0.2)
    assert not state.acquire("messages", "runB", 24)
    assert state.get("messages").lease_owner == "runA"


def test_a_run_whose_lease_was_taken_over_stops_with_a_clear_message(ingest: IngestKit) -> None:
    state = SyncState(ingest.client, ingest.stack.project, ingest.dataset)
    state.ensure()
    assert state.acquire("messages", "runA", 1)
    lease = LeaseKeeper(state, "messages", "runA", 1)
    time.sleep(1.5)
    assert state.acquire("messages", "runB", 60)  # runA's lease ran out: the next run takes the table
    with pytest.raises(LeaseLost, match=r"another run took over the lease \(lease_s = 1 s ran out"):
        lease.keep()
