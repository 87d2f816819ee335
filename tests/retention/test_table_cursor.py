"""A large dataset is pruned table by table, resumed from a cursor across sweeps and days, on the
local stack (Box API server, sshd, fake-gcs-server, Pub/Sub emulator).

The daily pass used to prune a (dataset, destination) pair with one catalog of the whole dataset:
one that could not be read within an invocation was started again from scratch by every sweep,
so a large dataset was never pruned.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from types import SimpleNamespace

import pytest

from shared.destinations import factory
from shared.gcp import gcs
from shared.ids import DestinationId
from shared.retention import summary as summary_module
from shared.retention.catalog import catalog
from shared.retention.scheduled import claim_name, cursor_name, daily_pass
from shared.runtime import config
from tests.retention.conftest import RetentionStack, key

pytestmark = pytest.mark.stack

D0, D1, D2 = dt.date(2025, 6, 1), dt.date(2025, 6, 2), dt.date(2025, 6, 3)
TABLES = ["customers", "items", "orders"]  # the order the pass goes through them
BUDGET_S = 10_000.0
BOX = DestinationId.parse("box")


def next_table(rs: RetentionStack, cursor: str) -> object:
    body = gcs.read_json(rs.state_bucket, cursor)
    return body.get("next") if isinstance(body, dict) else None


def status_of(rs: RetentionStack, claim: str) -> object:
    body = gcs.read_json(rs.state_bucket, claim)
    return body.get("status") if isinstance(body, dict) else None


class Clock:
    """``time.monotonic()`` as the prune (``PrunePass.out_of_time``) reads it: every reading one
    second later than the last, so a pass whose budget ends at ``stop_at`` sees exactly
    ``allowed`` readings in time. The daily pass's own check before each pair reads the real
    clock, well within the budget."""

    def __init__(self) -> None:
        self.stop_at, self.allowed, self.readings = 0.0, 0, 0

    def start(self, allowed: int) -> float:
        """The ``started`` for ``daily_pass(..., budget_s=BUDGET_S)``."""
        started = time.monotonic()
        self.stop_at, self.allowed, self.readings = started + BUDGET_S, allowed, 0
        return started

    def monotonic(self) -> float:
        self.readings += 1
        return self.stop_at - self.allowed + self.readings - 0.5


def test_a_dataset_is_pruned_one_table_at_a_time_from_a_cursor(
    rstack_factory: Callable[..., RetentionStack], monkeypatch: pytest.MonkeyPatch
) -> None:
    rs = rstack_factory(daily=1)
    runs = {table: (rs.run_of(D1, "box", table=table), rs.run_of(D2, "box", table=table)) for table in TABLES}
    clock = Clock()
    monkeypatch.setattr(summary_module, "time", SimpleNamespace(monotonic=clock.monotonic))
    entry = config().dataset(rs.dataset)
    assert entry is not None
    cursor = cursor_name((entry, BOX))
    today = dt.datetime.now(dt.UTC)

    def old_ones_left() -> list[str]:
        return [t for t, (old, _) in runs.items() if key(old) in rs.remote_runs("box")]

    # Two readings in time: the check before the first table and its one removal; the check
    # before the second table is out of time, so the pass stops there and keeps it as the cursor.
    first = daily_pass(config(), now=today, started=clock.start(allowed=2), budget_s=BUDGET_S)
    assert first.pruned == 1 and first.deferred >= 1
    assert old_ones_left() == ["items", "orders"]
    assert next_table(rs, cursor) == "items"
    assert gcs.stat(rs.state_bucket, claim_name((entry, BOX), today)) is None  # given back: the next sweep goes on

    # An older run of the first table arrives: the next sweep resumes at the second table and
    # does not look at the first one again (this run would be pruned if it did).
    late = rs.run_of(D0, "box", table="customers")
    second = daily_pass(config(), now=today, started=clock.start(allowed=2), budget_s=BUDGET_S)
    assert second.pruned == 1
    assert old_ones_left() == ["orders"] and key(late) in rs.remote_runs("box")
    assert next_table(rs, cursor) == "orders"

    # The cursor is not per day: the next day's first sweep continues the round and finishes it.
    tomorrow = today + dt.timedelta(days=1)
    third = daily_pass(config(), now=tomorrow, started=clock.start(allowed=2), budget_s=BUDGET_S)
    assert third.pruned == 1 and old_ones_left() == []
    assert gcs.stat(rs.state_bucket, cursor) is None
    assert status_of(rs, claim_name((entry, BOX), tomorrow)) == "done"
    assert key(late) in rs.remote_runs("box")
    for old, new in runs.values():
        assert [r.status for r in rs.results_for(old, "box")] == ["in_sync", "pruned"]
        assert key(new) in rs.remote_runs("box")

    # Done for that day; the day after, a new round starts at the first table again.
    assert daily_pass(config(), now=tomorrow, started=clock.start(allowed=100), budget_s=BUDGET_S).pruned == 0
    after = daily_pass(
        config(), now=tomorrow + dt.timedelta(days=1), started=clock.start(allowed=100), budget_s=BUDGET_S
    )
    assert after.pruned == 1 and key(late) not in rs.remote_runs("box")
    assert gcs.stat(rs.state_bucket, cursor) is None


def test_a_table_cut_short_inside_is_resumed_itself(
    rstack_factory: Callable[..., RetentionStack], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Out of time between two removals of one table: the next pass starts at that table again."""
    rs = rstack_factory(daily=1)
    for day in (D0, D1, D2):
        rs.run_of(day, "box", table="items")
    clock = Clock()
    monkeypatch.setattr(summary_module, "time", SimpleNamespace(monotonic=clock.monotonic))
    entry = config().dataset(rs.dataset)
    assert entry is not None
    now = dt.datetime.now(dt.UTC)
    # in time: the check before the table, its first removal; the second removal is deferred
    cut = daily_pass(config(), now=now, started=clock.start(allowed=2), budget_s=BUDGET_S)
    assert cut.pruned == 1 and len(rs.remote_runs("box")) == 2
    assert next_table(rs, cursor_name((entry, BOX))) == "items"
    rest = daily_pass(config(), now=now, started=clock.start(allowed=100), budget_s=BUDGET_S)
    assert rest.pruned == 1 and len(rs.remote_runs("box")) == 1
    assert gcs.stat(rs.state_bucket, cursor_name((entry, BOX))) is None
    assert status_of(rs, claim_name((entry, BOX), now)) == "done"


class Killed(BaseException):
    """The invocation stopped at its timeout: nothing of ours catches it."""


def test_an_invocation_stopped_mid_round_loses_only_the_table_it_was_in(
    rstack_factory: Callable[..., RetentionStack], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cursor is saved as each table starts: a pass killed inside the second table (its
    claim left busy, nothing given back) resumes there, not at the first table."""
    rs = rstack_factory(daily=1)
    for table in TABLES:
        rs.run_of(D1, "box", table=table)
        rs.run_of(D2, "box", table=table)
    clock = Clock()
    readings = clock.monotonic

    def dies_on_fourth() -> float:  # table 1: its check and removal; table 2: its check, then
        if clock.readings == 3:
            raise Killed
        return readings()

    monkeypatch.setattr(summary_module, "time", SimpleNamespace(monotonic=dies_on_fourth))
    entry = config().dataset(rs.dataset)
    assert entry is not None
    with pytest.raises(Killed):
        daily_pass(config(), now=dt.datetime.now(dt.UTC), started=clock.start(allowed=100), budget_s=BUDGET_S)
    assert next_table(rs, cursor_name((entry, BOX))) == "items"


@pytest.mark.parametrize("destination", ["box", "sftp:local"])
def test_a_catalog_of_one_table_does_not_see_a_table_named_like_it(
    rstack_factory: Callable[..., RetentionStack], destination: str
) -> None:
    rs = rstack_factory(daily=1)
    orders = rs.run_of(D1, destination, table="orders")
    rs.run_of(D1, destination, table="orders_eu")
    entry = config().dataset(rs.dataset)
    assert entry is not None
    with factory.opened(destination, config()) as handle:
        found = catalog(entry, config(), handle, series="orders")
        whole = catalog(entry, config(), handle)
    assert found is not None and whole is not None
    assert [u.path.rsplit("/", 3)[1:] for u in found.units] == [["orders", f"{D1:%Y%m%d}", orders.run_id]]
    assert [r.folder.run_id for r in found.known] == [orders.run_id]
    assert [r.folder.run_id for u in found.units for r in u.runs] == [orders.run_id]
    assert {u.series for u in whole.units} == {"orders", "orders_eu"}  # no series: the whole dataset
