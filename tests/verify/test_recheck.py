"""The daily recheck of in_sync runs (``verify.recheck_days``), a pass of the verify sweep.

The sweep is called with a ``now`` on a later day instead of waiting for it (a run's own
verification day is not rechecked: it was just compared).
"""

from __future__ import annotations

import datetime as dt

import pytest

from shared.destinations import memory
from shared.runtime import config
from shared.verify.markers import Kind, marker
from shared.verify.recheck import recheck
from shared.verify.sweep import sweep
from tests.verify.conftest import SECOND, THREE_FILES, Run, VerifyStack

pytestmark = pytest.mark.stack

FILES = THREE_FILES


def days_later(days: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(days=days)


def in_sync_run(vstack: VerifyStack) -> Run:
    run = vstack.new_run(FILES)
    for receipt in vstack.deliver_all(run):
        vstack.receipt(receipt)
    assert [r.status for r in vstack.results_for(run)] == ["in_sync"]
    return run


def test_a_file_deleted_after_in_sync_is_one_recheck_mismatch_naming_it(vstack: VerifyStack) -> None:
    run = in_sync_run(vstack)
    kept = in_sync_run(vstack)  # another run, untouched: rechecked, nothing published
    memory.process_destination().delete(vstack.remote_path(run, SECOND))

    # The day of the verification itself is not rechecked (it was just compared).
    assert sweep(config()).rechecked == 0
    assert len(vstack.results_for(run)) == 1

    tomorrow = days_later(1)
    summary = sweep(config(), now=tomorrow)
    assert summary.rechecked == 2 and summary.recheck_mismatches == 1
    results = vstack.results_for(run)
    assert [(r.status, r.stage) for r in results] == [("in_sync", "verify"), ("mismatch", "verify:recheck")]
    mismatch = results[-1]
    assert mismatch.missing == [SECOND] and mismatch.destination == "memory"
    assert mismatch.files_present == 2 and mismatch.check == "sha1"
    assert "1 missing" in (mismatch.reason or "") and "daily recheck" in (mismatch.reason or "")
    assert mismatch.source is not None and mismatch.source.table == "orders"
    assert [r.status for r in vstack.results_for(kept)] == ["in_sync"]  # in sync again: nothing published
    texts = [a["text"] for a in vstack.alerts() if run.run_id in a.get("text", "")]
    assert len(texts) == 1 and SECOND in texts[0] and "mismatch" in texts[0]
    for r in (run, kept):
        assert vstack.state_bucket and _marker(vstack, marker(r.folder.prefix, "memory", Kind.RECHECK, _day(tomorrow)))

    # Again the same day: nothing new, nothing compared. (30 minutes later, but never past that
    # day's midnight: run at 23:40 UTC, tomorrow + 30 min was the next day, rechecked again.)
    later_that_day = min(tomorrow + dt.timedelta(minutes=30), tomorrow.replace(hour=23, minute=59, second=59))
    assert _day(later_that_day) == _day(tomorrow)
    again = sweep(config(), now=later_that_day)
    assert again.rechecked == 0 and len(vstack.results_for(run)) == 2
    # The next day: the mismatch of this round was reported already; the untouched run is checked again.
    next_day = sweep(config(), now=days_later(2))
    assert next_day.rechecked == 1 and next_day.recheck_mismatches == 0
    assert len(vstack.results_for(run)) == 2
    assert _marker(vstack, marker(run.folder.prefix, "memory", Kind.RECHECK_MISMATCH, 0))


def test_a_changed_file_is_hash_differs(vstack: VerifyStack) -> None:
    run = in_sync_run(vstack)
    vstack.deliver(run, SECOND, data=b"PAR1" + b"B" * 2000)  # same size, other bytes
    summary = recheck(config(), now=days_later(1))
    assert summary.mismatches == 1
    assert [(r.status, r.hash_differs) for r in vstack.results_for(run)][-1] == ("mismatch", [SECOND])


def test_runs_older_than_recheck_days_are_not_looked_at(vstack_factory) -> None:
    vstack = vstack_factory(recheck_days=2)
    run = in_sync_run(vstack)
    memory.process_destination().delete(vstack.remote_path(run, SECOND))
    summary = sweep(config(), now=days_later(3))
    assert summary.rechecked == 0 and len(vstack.results_for(run)) == 1
    # Within the window it is.
    assert sweep(config(), now=days_later(1.5)).recheck_mismatches == 1


def test_recheck_days_0_is_off(vstack_factory) -> None:
    vstack = vstack_factory(recheck_days=0)
    run = in_sync_run(vstack)
    memory.process_destination().delete(vstack.remote_path(run, SECOND))
    summary = sweep(config(), now=days_later(1))
    assert summary.rechecked == 0 and summary.recheck_mismatches == 0
    assert len(vstack.results_for(run)) == 1


def test_runs_without_an_in_sync_result_are_not_rechecked(vstack_factory) -> None:
    vstack = vstack_factory(self_heal=False)
    run = vstack.new_run(FILES)
    receipts = vstack.deliver_all(run)
    vstack.deliver(run, SECOND, data=b"PAR1" + b"B" * 2000)
    for receipt in receipts:
        vstack.receipt(receipt)
    assert [r.status for r in vstack.results_for(run)] == ["mismatch"]
    assert sweep(config(), now=days_later(1)).rechecked == 0
    assert len(vstack.results_for(run)) == 1


def _day(when: dt.datetime) -> str:
    return when.strftime("%Y%m%d")


def _marker(vstack: VerifyStack, name: str) -> bool:
    from shared.gcp import gcs

    return gcs.stat(vstack.state_bucket, name) is not None


def test_out_of_time_or_a_transient_error_leaves_the_run_to_the_next_sweep_or_another_instance(
    vstack: VerifyStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shared.verify.recheck as recheck_module
    from shared.errors import TransientError

    run = in_sync_run(vstack)
    memory.process_destination().delete(vstack.remote_path(run, SECOND))
    tomorrow = days_later(1)
    daily = marker(run.folder.prefix, "memory", Kind.RECHECK, _day(tomorrow))

    late = recheck(config(), now=tomorrow, budget_s=-1)
    assert (late.deferred, late.checked, late.handed_over) == (0, 0, 1) and not _marker(vstack, daily)

    def unreachable(*args: object, **kwargs: object) -> None:
        raise TransientError("memory: connection reset")

    with monkeypatch.context() as patched:
        patched.setattr(recheck_module, "run_comparison", unreachable)
        failed = recheck(config(), now=tomorrow)
    assert failed.failures == 1 and not _marker(vstack, daily)  # released: the next sweep retries

    assert sweep(config(), now=tomorrow).recheck_mismatches == 1
    assert [r.stage for r in vstack.results_for(run)] == ["verify", "verify:recheck"]


def test_a_long_marker_listing_is_read_in_parts_across_sweeps(vstack: VerifyStack) -> None:
    """At thousands of tables the state bucket's markers take more than one invocation to list
    (docs/capacity.md): each recheck lists until its share of time is spent, stops where a run
    folder ends, and saves where the next one carries on; the part that reaches the end starts
    the next pass from the beginning."""
    from shared.gcp import gcs
    from shared.verify import marker_scan

    runs_made = sorted((in_sync_run(vstack), in_sync_run(vstack)), key=lambda r: r.folder.prefix)
    tomorrow = days_later(1)
    cursor = marker_scan.cursor(vstack.state_bucket, vstack.export_prefix).name

    def rechecked(run: Run) -> bool:
        return _marker(vstack, marker(run.folder.prefix, "memory", Kind.RECHECK, _day(tomorrow)))

    def one_part() -> int:  # the clock is already past the listing's time at its first object
        return recheck(config(), now=tomorrow, scan_budget_s=0, scan_check_every=1).checked

    assert one_part() == 1 and rechecked(runs_made[0]) and not rechecked(runs_made[1])
    assert gcs.read_json(vstack.state_bucket, cursor)["next_start"] == runs_made[1].folder.prefix
    assert one_part() == 1 and rechecked(runs_made[1])
    assert gcs.read_json(vstack.state_bucket, cursor)["next_start"] == ""  # the end: start over
    assert one_part() == 0  # the first folder again, rechecked today already
    # with time to list it all, one sweep covers both runs (and the day's rechecks are done)
    assert recheck(config(), now=days_later(2)).checked == 2


def test_a_claim_left_busy_by_a_stopped_invocation_is_taken_over_by_a_later_sweep(vstack: VerifyStack) -> None:
    """An invocation stopped at its timeout mid-compare leaves its day's claim busy; before, that
    pair was not rechecked until the next day. The listing shows the claim busy (its metadata),
    and a sweep after a verify invocation's longest life takes it over; one younger is left."""
    from shared.budgeted_pass import ABANDONED_AFTER, claim_pair

    stale, fresh = in_sync_run(vstack), in_sync_run(vstack)
    for run in (stale, fresh):
        memory.process_destination().delete(vstack.remote_path(run, SECOND))
    tomorrow = days_later(1).replace(hour=12)  # the sweeps below stay within its day
    for run, age in ((stale, ABANDONED_AFTER + dt.timedelta(seconds=5)), (fresh, dt.timedelta(seconds=30))):
        taken = tomorrow - age  # when the stopped (or still running) invocation claimed it
        daily = marker(run.folder.prefix, "memory", Kind.RECHECK, _day(tomorrow))
        body = {"round": 0, "checked_at": taken.isoformat(), "status": "checking"}
        assert claim_pair(vstack.state_bucket, daily, body, taken, "checked_at")

    summary = sweep(config(), now=tomorrow)
    assert (summary.rechecked, summary.recheck_mismatches) == (1, 1)
    assert [r.stage for r in vstack.results_for(stale)] == ["verify", "verify:recheck"]
    assert [r.stage for r in vstack.results_for(fresh)] == ["verify"]  # its holder may still be at work
    # Later that day: the outcome replaced the first claim (no longer busy: not taken over
    # again); the second's holder has outlived any invocation by now, and it is taken over.
    later = sweep(config(), now=tomorrow + ABANDONED_AFTER)
    assert (later.rechecked, later.recheck_mismatches) == (1, 1)
    assert [r.stage for r in vstack.results_for(stale)] == ["verify", "verify:recheck"]
    assert [r.stage for r in vstack.results_for(fresh)] == ["verify", "verify:recheck"]
    assert sweep(config(), now=tomorrow + 2 * ABANDONED_AFTER).rechecked == 0


def test_pairs_a_sweep_has_no_time_for_are_rechecked_by_other_verify_instances(vstack: VerifyStack) -> None:
    """At thousands of tables one sweep cannot compare every due pair (docs/capacity.md): what is
    left when its time is spent goes out as recheck requests on verify-requests, which other
    verify instances handle as the sweep would (claim, compare, report once). Before, those
    pairs waited for later sweeps, so a pair was rechecked every 5–10 days instead of daily."""
    import json
    import uuid
    from unittest.mock import ANY

    from shared.gcp import gcs
    from shared.messages import VerifyRequest
    from shared.topology import VERIFY_REQUESTS
    from shared.verify.recheck import recheck_requested

    def today() -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    watch = f"vrecheck-{uuid.uuid4().hex[:12]}"
    vstack.admin.create_subscription(watch, VERIFY_REQUESTS)
    changed, kept = in_sync_run(vstack), in_sync_run(vstack)
    memory.process_destination().delete(vstack.remote_path(changed, SECOND))
    tomorrow = days_later(1)

    swept = recheck(config(), now=tomorrow, budget_s=-1)
    assert (swept.checked, swept.handed_over, swept.deferred) == (0, 2, 0)
    published = [json.loads(m["data_bytes"]) for m in vstack.admin.pull(watch)]
    assert [(p["destination"], sorted(p["recheck"])) for p in published] == [
        ("memory", sorted([changed.folder.prefix, kept.folder.prefix]))
    ]
    # the next sweep finds them still due (their messages not handled yet) and hands them over again
    assert recheck(config(), now=tomorrow, budget_s=-1).handed_over == 2

    # through the verify function (today: each pair is claimed, and skipped as verified today)
    for body in published:
        vstack.request(body)
    for run in (changed, kept):
        assert gcs.read_json(vstack.state_bucket, marker(run.folder.prefix, "memory", Kind.RECHECK, _day(today()))) == {
            "checked_at": ANY,
            "reason": "verified today",
            "round": 0,
            "status": "skipped",
        }
    before = len(vstack.results_for(changed))
    for body in published:  # tomorrow, as another verify instance handles it
        recheck_requested(config(), VerifyRequest.from_obj(body), now=tomorrow)
    results = vstack.results_for(changed)
    assert [(r.status, r.stage) for r in results[before:]] == [("mismatch", "verify:recheck")]
    assert results[-1].missing == [SECOND]
    assert [r.status for r in vstack.results_for(kept)] == ["in_sync"]  # still in sync: nothing published
    for run in (changed, kept):
        assert _marker(vstack, marker(run.folder.prefix, "memory", Kind.RECHECK, _day(tomorrow)))

    # the second hand-over's duplicate request, and the sweep: nothing is compared twice that day
    for body in published:
        assert recheck_requested(config(), VerifyRequest.from_obj(body), now=tomorrow).checked == 0
    assert len(vstack.results_for(changed)) == len(results)
    assert sweep(config(), now=tomorrow).rechecked == 0


def test_a_recheck_request_for_something_that_is_not_a_run_folder_is_rejected(vstack: VerifyStack) -> None:
    vstack.request({"recheck": ["exports/not/a/run/folder/deeper/"], "destination": "memory"})
    rejected = [r for r in vstack.results() if r.status == "rejected"]
    assert rejected and "is not a run folder" in (rejected[-1].reason or "")
