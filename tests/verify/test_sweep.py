"""The scheduled sweep: overdue runs get ``incomplete`` (once), with a Slack message at the sink.

The sweep is called with a ``now`` past the deadline instead of waiting for it; the request
path (``{"sweep": true}`` on verify-requests) is checked with the real clock.
"""

from __future__ import annotations

import pytest

from shared.reporting.alert_outbox import GcsOutbox
from shared.reporting.alerts import ProcessRateLimiter, flush_all
from shared.runtime import config
from shared.verify.markers import read_state
from shared.verify.sweep import SweepSummary, sweep
from tests.verify.conftest import SWEEP_FILES, VerifyStack, later

pytestmark = pytest.mark.stack

FILES = SWEEP_FILES
FIRST, SECOND = sorted(FILES)


def test_sweep_request_with_nothing_overdue_publishes_nothing(vstack: VerifyStack) -> None:
    run = vstack.new_run(FILES, manifest=False)
    vstack.request({"sweep": True})
    assert vstack.results_for(run) == []


def test_export_that_never_finished_is_incomplete_once_with_an_alert(vstack: VerifyStack) -> None:
    run = vstack.new_run(FILES, ("memory", "sftp:local"), manifest=False)
    summary = sweep(config(), now=later(3))
    assert summary.runs_due == 1 and summary.published == 2
    results = vstack.results_for(run)
    assert sorted((r.destination, r.status) for r in results) == [
        ("memory", "incomplete"),
        ("sftp:local", "incomplete"),
    ]
    assert all("export incomplete" in (r.reason or "") and r.stage == "verify:sweep" for r in results)
    texts = [a["text"] for a in vstack.alerts() if run.run_id in a.get("text", "")]
    assert len(texts) == 1 and "incomplete" in texts[0] and "export incomplete" in texts[0]
    # The run's second result came within alerts.min_interval_s: queued in GCS, not dropped ...
    held = GcsOutbox(vstack.state_bucket).pending(run.run_id)
    assert [p.result.status for p in held] == ["incomplete"] and len(held) == 1
    # ... and sent with the run's next message once the interval has passed (a fresh limiter here).
    assert flush_all(config(), limiter=ProcessRateLimiter()) >= 1
    texts = [a["text"] for a in vstack.alerts() if run.run_id in a.get("text", "")]
    assert (
        len(texts) == 2 and "export incomplete" in texts[1] and GcsOutbox(vstack.state_bucket).pending(run.run_id) == []
    )
    assert sweep(config(), now=later(3.5)).published == 0  # reported once
    assert len(vstack.results_for(run)) == 2


def test_missing_files_past_the_deadline_are_named_then_healed(vstack: VerifyStack) -> None:
    run = vstack.new_run(FILES)
    vstack.receipt(vstack.deliver(run, FIRST))  # the upload of the second file never happened
    assert sweep(config(), now=later(1)).published == 0  # not overdue yet
    sweep(config(), now=later(3))
    [result] = vstack.results_for(run)
    assert result.status == "incomplete" and result.missing == [SECOND] and result.files_present == 1
    assert result.heal_attempts == 1 and "self-heal attempt 1" in (result.reason or "")
    texts = [a["text"] for a in vstack.alerts() if run.run_id in a.get("text", "")]
    assert len(texts) == 1 and f"missing (1): {SECOND}" in texts[0]
    # The heal's re-delivery arrives: the round settles with one in_sync.
    vstack.receipt(vstack.deliver(run, SECOND))
    assert [(r.status, r.heal_attempts) for r in vstack.results_for(run)] == [("incomplete", 1), ("in_sync", 1)]


def test_a_heal_that_never_lands_is_reported_after_its_own_deadline(vstack_factory) -> None:
    vstack = vstack_factory(max_heal_attempts=1)
    run = vstack.new_run(FILES)
    vstack.receipt(vstack.deliver(run, FIRST))
    sweep(config(), now=later(3))  # incomplete; heal attempt 1 starts (at the sweep's "now")
    assert sweep(config(), now=later(4)).published == 0  # the heal round is not overdue yet
    sweep(config(), now=later(6))
    results = vstack.results_for(run)
    assert [(r.status, r.heal_attempts) for r in results] == [("incomplete", 1), ("incomplete", 1)]
    assert "self-heal attempts used: 1 of 1" in (results[-1].reason or "")
    assert read_state(vstack.state_bucket, run.folder.prefix, "memory").heal_attempts == 1


def test_complete_run_whose_receipts_were_lost_is_decided_by_the_sweep(vstack: VerifyStack) -> None:
    run = vstack.new_run(FILES)
    vstack.deliver_all(run)  # delivered, but no receipt ever reached verify
    sweep(config(), now=later(3))
    assert [(r.status, r.stage) for r in vstack.results_for(run)] == [("in_sync", "verify:sweep")]
    sweep(config(), now=later(4))
    assert len(vstack.results_for(run)) == 1


def test_a_destination_that_cannot_be_checked_is_failed_once(vstack: VerifyStack) -> None:
    run = vstack.new_run(FILES, ("sftp:nosuch",))  # routed to a partner the config does not have
    sweep(config(), now=later(3))
    sweep(config(), now=later(4))
    [result] = vstack.results_for(run)
    assert result.status == "failed" and result.destination == "sftp:nosuch"
    assert "no partner named 'nosuch'" in (result.reason or "")


def test_the_sweeps_passes_stop_in_order_before_the_verify_function_does() -> None:
    """Budgets from the sweep's start: its listing, the overdue pass, the recheck, then the prune
    pass, all inside the deployed timeout."""
    from shared.retention import scheduled
    from shared.topology import FUNCTIONS
    from shared.verify import recheck
    from shared.verify import sweep as sweep_module

    verify_timeout = {f.name: f for f in FUNCTIONS}["verify"].timeout_s
    assert (
        0
        < sweep_module.LISTING_BUDGET_S
        < sweep_module.OVERDUE_BUDGET_S
        < recheck.DEFAULT_BUDGET_S
        < scheduled.DEFAULT_BUDGET_S
        < verify_timeout
        <= 540
    )


def test_overdue_runs_past_the_sweeps_budget_are_left_to_the_next_sweep(vstack: VerifyStack) -> None:
    """Many overdue runs (a destination down for hours) cannot eat the recheck's and retention's
    time: none is started past the overdue budget; the next sweep takes them."""
    runs = [vstack.new_run(FILES) for _ in range(2)]
    for run in runs:
        vstack.deliver_all(run)  # delivered, but no receipt ever reached verify
    late = sweep(config(), now=later(3), overdue_budget_s=-1)
    assert (late.runs_due, late.deferred, late.published) == (2, 2, 0)
    assert all(vstack.results_for(run) == [] for run in runs)
    nxt = sweep(config(), now=later(3.5))
    assert (nxt.deferred, nxt.published) == (0, 2)
    assert all([r.status for r in vstack.results_for(run)] == ["in_sync"] for run in runs)


def test_a_long_export_listing_is_read_in_parts_across_sweeps(vstack: VerifyStack) -> None:
    """Tens of thousands of tables kept for weeks take longer to list than a sweep may
    (docs/capacity.md): each sweep lists until its listing budget is spent, stops where a run
    folder ends, and the next sweep carries on from a cursor; every overdue run is reported by
    one of them, and a listing that fits is read whole again."""
    runs = sorted((vstack.new_run(FILES) for _ in range(2)), key=lambda r: r.folder.prefix)
    for run in runs:
        vstack.deliver_all(run)  # delivered, but no receipt ever reached verify

    def one_part() -> SweepSummary:  # the clock is already past the listing's time at its first object
        return sweep(config(), now=later(3), listing_budget_s=0, listing_check_every=1)

    first = one_part()
    assert (first.listed_from, first.listing_next) == ("", runs[1].folder.prefix)
    assert (first.runs_seen, first.published) == (1, 1)
    assert [r.status for r in vstack.results_for(runs[0])] == ["in_sync"] and vstack.results_for(runs[1]) == []
    second = one_part()
    assert (second.listed_from, second.listing_next) == (runs[1].folder.prefix, "")  # the end: start over
    assert (second.runs_seen, second.published) == (1, 1)
    assert [r.status for r in vstack.results_for(runs[1])] == ["in_sync"]
    whole = sweep(config(), now=later(3.5))
    assert (whole.listed_from, whole.listing_next, whole.runs_seen, whole.published) == ("", "", 2, 0)


def test_the_recheck_finds_its_runs_beyond_the_sweeps_part_of_the_export_listing(vstack: VerifyStack) -> None:
    """The recheck's candidates come from the state bucket's markers, not from the export listing:
    a sweep that listed only part of the exports still rechecks every recent in_sync run."""
    runs = sorted((vstack.new_run(FILES) for _ in range(2)), key=lambda r: r.folder.prefix)
    for run in runs:
        for receipt in vstack.deliver_all(run):
            vstack.receipt(receipt)
    assert all([r.status for r in vstack.results_for(run)] == ["in_sync"] for run in runs)
    part = sweep(config(), now=later(25), listing_budget_s=0, listing_check_every=1)
    assert part.runs_seen == 1 and part.rechecked == 2


def test_a_cursor_that_does_not_parse_starts_the_listing_from_the_beginning(vstack: VerifyStack) -> None:
    """Where the next sweep's listing starts is a small object anyone with access can overwrite:
    one that is not JSON must not fail every sweep from then on."""
    from shared.gcp import gcs
    from shared.verify.sweep import cursor

    run = vstack.new_run(FILES)
    vstack.deliver_all(run)  # delivered, but no receipt ever reached verify
    gcs.write(vstack.state_bucket, cursor(vstack.state_bucket, vstack.export_prefix).name, b"{not json")
    summary = sweep(config(), now=later(3))
    assert (summary.listed_from, summary.published) == ("", 1)
    assert [r.status for r in vstack.results_for(run)] == ["in_sync"]
