"""Retention on the local stack's Box API server and OpenSSH sshd: runs verified by the real
verify stage, pruned by shared.retention through the Destination protocol."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from shared.gcp import gcs
from shared.retention.prune import prune
from shared.runtime import config
from shared.verify import markers
from tests.retention.conftest import RetentionStack, key

pytestmark = pytest.mark.stack

DESTINATIONS = ["box", "sftp:local"]
D1, D2, D3 = dt.date(2025, 3, 1), dt.date(2025, 3, 2), dt.date(2025, 3, 3)


@pytest.mark.parametrize("destination", DESTINATIONS)
def test_old_runs_are_pruned_only_after_a_newer_run_is_in_sync(
    rstack_factory: Callable[..., RetentionStack], destination: str
) -> None:
    rs = rstack_factory(daily=1)
    old, middle = rs.run_of(D1, destination), rs.run_of(D2, destination)
    newest = rs.run_of(D3, destination, verify=False)  # delivered, not verified yet
    other = rs.run_of(D1, destination, table="customers")  # another table: its own policy

    first = prune(config())
    actions = {"/".join(o.path.split("/")[-3:]): o.action for o in first.outcomes}
    assert actions[key(newest)] == "keep"  # the daily 1 of 1, though not in_sync
    assert actions[key(middle)] == "protect"  # nothing newer is in_sync: the newest good copy stays
    assert actions[key(old)] == "pruned"  # older than the in_sync middle run
    assert actions[key(other)] == "keep"
    assert rs.remote_runs(destination) == {key(middle), key(newest), key(other)}
    pruned = [r for r in rs.results_for(old) if r.status == "pruned"]
    assert len(pruned) == 1 and pruned[0].destination == destination and pruned[0].stage == "prune"
    assert pruned[0].date == D1.isoformat() and pruned[0].source and pruned[0].source.table == "orders"
    assert "daily=1" in (pruned[0].reason or "") and "removed" in (pruned[0].reason or "")
    day_folder = rs.remote_files(destination)
    assert not any(path.startswith(f"orders/{D1:%Y%m%d}") for path in day_folder)

    # The newest run becomes in_sync: now the middle one goes too, and the old one is not reported twice.
    rs.verify_receipts(newest, destination)
    second = prune(config())
    assert second.count("pruned") == 1
    assert rs.remote_runs(destination) == {key(newest), key(other)}
    assert [r.status for r in rs.results_for(middle, destination)] == ["in_sync", "pruned"]
    assert [r.status for r in rs.results_for(old, destination)] == ["in_sync", "pruned"]
    assert prune(config()).count("pruned") == 0  # nothing left to do


@pytest.mark.parametrize("destination", DESTINATIONS)
def test_dry_run_changes_nothing(rstack_factory: Callable[..., RetentionStack], destination: str) -> None:
    rs = rstack_factory(daily=1)
    old, new = rs.run_of(D1, destination), rs.run_of(D2, destination)
    before = sorted(rs.remote_files(destination))
    state_before = sorted(o.name for o in gcs.list_prefix(rs.state_bucket, rs.export_prefix + "/"))

    plan = prune(config(), dry_run=True)
    assert {o.action for o in plan.outcomes if o.path.endswith(old.run_id)} == {"prune"}
    assert {o.action for o in plan.outcomes if o.path.endswith(new.run_id)} == {"keep"}
    assert sorted(rs.remote_files(destination)) == before
    assert sorted(o.name for o in gcs.list_prefix(rs.state_bucket, rs.export_prefix + "/")) == state_before
    assert [r.status for r in rs.results_for(old)] == ["in_sync"]


def test_monthly_keeps_the_newest_run_of_each_recent_month(rstack_factory: Callable[..., RetentionStack]) -> None:
    rs = rstack_factory(daily=2, monthly=3)
    days = [dt.date(2024, 11, 30), dt.date(2024, 12, 10), dt.date(2024, 12, 20), dt.date(2025, 1, 5)]
    days += [dt.date(2025, 2, 3), dt.date(2025, 2, 27), dt.date(2025, 3, 1)]
    runs = {day: rs.run_of(day, "box") for day in days}

    summary = prune(config())
    kept = {day for day, run in runs.items() if key(run) in rs.remote_runs("box")}
    # daily 2: 03-01, 02-27; monthly 3: March (03-01), February (02-27), January (01-05)
    assert kept == {dt.date(2025, 3, 1), dt.date(2025, 2, 27), dt.date(2025, 1, 5)}
    why = {o.date: o.why for o in summary.outcomes}
    assert why["2025-03-01"] == "kept: daily 1 of 2, monthly 1 of 3"
    assert why["2025-01-05"] == "kept: monthly 3 of 3"
    assert summary.count("pruned") == 4


def test_a_same_day_rerun_replaces_the_earlier_run(rstack_factory: Callable[..., RetentionStack]) -> None:
    rs = rstack_factory(daily=1)
    first = rs.run_of(D1, "sftp:local")
    rerun = rs.run_of(D1, "sftp:local")  # its _run.json is younger: the newer run of that day
    prune(config())
    assert rs.remote_runs("sftp:local") == {key(rerun)}
    assert [r.status for r in rs.results_for(first, "sftp:local")] == ["in_sync", "pruned"]


def test_a_run_still_delivering_is_never_pruned(rstack_factory: Callable[..., RetentionStack]) -> None:
    """Even older than the policy and than an in_sync run: a backfill still being delivered stays."""
    rs = rstack_factory(daily=1)
    backfill = rs.run_of(D1, "box", verify=False)
    rs.run_of(D2, "box")
    summary = prune(config())
    outcome = next(o for o in summary.outcomes if o.path.endswith(backfill.run_id))
    assert outcome.action == "protect" and "not finished" in outcome.why
    assert key(backfill) in rs.remote_runs("box")


def test_a_pruned_run_is_not_rechecked_as_a_mismatch(rstack_factory: Callable[..., RetentionStack]) -> None:
    from shared.verify.sweep import sweep

    rs = rstack_factory(daily=1)
    old = rs.run_of(D1, "box")
    rs.run_of(D2, "box")
    prune(config())
    assert gcs.stat(rs.state_bucket, markers.folder(old.folder.prefix, "box") + markers.PRUNED) is not None
    summary = sweep(config(), now=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    assert summary.rechecked == 1 and summary.recheck_mismatches == 0
    assert [r.status for r in rs.results_for(old)] == ["in_sync", "pruned"]


@pytest.mark.parametrize("destination", DESTINATIONS)
def test_a_query_export_is_pruned_by_day_folder(
    rstack_factory: Callable[..., RetentionStack], destination: str
) -> None:
    """Same-day runs of a query export share their day's folder: the day is kept or removed whole."""
    rs = rstack_factory(daily=1)
    old = rs.run_of(D1, destination, query=True)
    rs.run_of(D2, destination, query=True)
    rs.run_of(D2, destination, query=True)  # a same-day rerun: same folder
    summary = prune(config(), export=rs.export)
    assert {(o.date, o.action) for o in summary.outcomes} == {(D1.isoformat(), "pruned"), (D2.isoformat(), "keep")}
    assert rs.remote_days(destination) == {f"{D2:%Y%m%d}"}
    assert [r.status for r in rs.results_for(old, destination)] == ["in_sync", "pruned"]


@pytest.mark.parametrize("destination", DESTINATIONS)
def test_an_unverified_same_day_rerun_of_a_query_export_protects_older_days(
    rstack_factory: Callable[..., RetentionStack], destination: str
) -> None:
    """The rerun overwrote the day folder's files: until it is in_sync, the day's earlier in_sync
    run proves nothing about what is there, so the older day is the newest good copy."""
    rs = rstack_factory(daily=1)
    old = rs.run_of(D1, destination, query=True)
    rs.run_of(D2, destination, query=True)
    rerun = rs.run_of(D2, destination, query=True, verify=False)  # delivered, not verified yet

    summary = prune(config(), export=rs.export)
    actions = {(o.date, o.action) for o in summary.outcomes}
    assert actions == {(D1.isoformat(), "protect"), (D2.isoformat(), "keep")}
    assert rs.remote_days(destination) == {f"{D1:%Y%m%d}", f"{D2:%Y%m%d}"}

    rs.verify_receipts(rerun, destination)  # the rerun is in_sync: now the older day goes
    assert {(o.date, o.action) for o in prune(config(), export=rs.export).outcomes} == {
        (D1.isoformat(), "pruned"),
        (D2.isoformat(), "keep"),
    }
    assert [r.status for r in rs.results_for(old, destination)] == ["in_sync", "pruned"]


def test_a_same_day_rerun_of_a_query_export_in_mismatch_protects_older_days(
    rstack_factory: Callable[..., RetentionStack],
) -> None:
    rs = rstack_factory(daily=1, self_heal=False)
    rs.run_of(D1, "sftp:local", query=True)
    rs.run_of(D2, "sftp:local", query=True)
    bad = rs.run_of(D2, "sftp:local", query=True, verify=False)
    damaged = sorted(bad.files)[0]
    rs.deliver(bad, damaged, "sftp:local", data=b"X" * len(bad.files[damaged]))  # same size, other bytes
    for receipt in rs.receipts[(bad.run_id, "sftp:local")]:
        rs.receipt(receipt)
    assert [r.status for r in rs.results_for(bad, "sftp:local")] == ["mismatch"]

    summary = prune(config(), export=rs.export, destination="sftp:local")
    actions = {o.date: (o.action, o.why) for o in summary.outcomes}
    assert actions[D1.isoformat()] == ("protect", "protected: no newer run folder is in_sync here")
    assert rs.remote_days("sftp:local") == {f"{D1:%Y%m%d}", f"{D2:%Y%m%d}"}


def test_a_prune_stopped_before_reporting_is_reported_by_the_next(
    rstack_factory: Callable[..., RetentionStack],
) -> None:
    """What an instance that died between removing and reporting leaves: ``pruning.json`` and no folder."""
    from shared.destinations import factory

    rs = rstack_factory(daily=1)
    old = rs.run_of(D1, "box")
    rs.run_of(D2, "box")
    gcs.write(rs.state_bucket, markers.folder(old.folder.prefix, "box") + markers.PRUNING, b"{}", "application/json")
    with factory.opened("box", config()) as box:
        assert box.delete_folder(f"GCP/bigquery/{key(old).replace('orders/', rs.dataset + '/orders/', 1)}")
    assert key(old) not in rs.remote_runs("box")
    assert [r.status for r in rs.results_for(old)] == ["in_sync"]

    prune(config(), destination="box")
    assert [r.status for r in rs.results_for(old)] == ["in_sync", "pruned"]
    assert "earlier prune" in (rs.results_for(old)[-1].reason or "")
    prune(config(), destination="box")
    assert [r.status for r in rs.results_for(old)] == ["in_sync", "pruned"]  # once


@pytest.mark.parametrize("destination", DESTINATIONS)
def test_a_newer_run_in_mismatch_protects_the_older_in_sync_one(
    rstack_factory: Callable[..., RetentionStack], destination: str
) -> None:
    rs = rstack_factory(daily=1, self_heal=False)
    old = rs.run_of(D1, destination)
    bad = rs.run_of(D2, destination, verify=False)
    damaged = sorted(bad.files)[0]
    rs.deliver(bad, damaged, destination, data=b"X" * len(bad.files[damaged]))  # same size, other bytes
    for receipt in rs.receipts[(bad.run_id, destination)]:
        rs.receipt(receipt)
    assert [r.status for r in rs.results_for(bad, destination)] == ["mismatch"]

    summary = prune(config())
    actions = {o.date: (o.action, o.why) for o in summary.outcomes if o.destination == destination}
    assert actions[D2.isoformat()] == ("keep", "kept: daily 1 of 1")
    assert actions[D1.isoformat()] == ("protect", "protected: no newer run folder is in_sync here")
    assert rs.remote_runs(destination) == {key(old), key(bad)}
    assert [r.status for r in rs.results_for(old, destination)] == ["in_sync"]
