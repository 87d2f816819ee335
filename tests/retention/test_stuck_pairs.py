"""What could stop retention at a destination for good, on the local stack (Box API server,
sshd, fake-gcs-server, Pub/Sub emulator): a daily claim whose invocation was stopped at its
timeout, and one folder the destination refuses to remove."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from shared.destinations import factory
from shared.destinations.sftp.destination import SftpDestination
from shared.errors import PermanentError
from shared.gcp import gcs
from shared.retention.prune import prune
from shared.retention.scheduled import claim_name, daily_pass
from shared.runtime import config
from shared.topology import VERIFY_TIMEOUT_S
from tests.retention.conftest import RetentionStack, key

pytestmark = pytest.mark.stack

D1, D2, D3 = dt.date(2025, 5, 1), dt.date(2025, 5, 2), dt.date(2025, 5, 3)


def test_a_claim_left_by_an_invocation_stopped_at_its_timeout_is_taken_over(
    rstack_factory: Callable[..., RetentionStack],
) -> None:
    """An invocation stopped at 540 s (mid-listing or mid-removal) cannot give its claim back:
    it stayed ``pruning`` and no sweep pruned the pair for the rest of the day."""
    rs = rstack_factory(daily=1)
    old = rs.run_of(D1, "box")
    rs.run_of(D2, "box")
    now = dt.datetime.now(dt.UTC)
    name = claim_name((config().dataset(rs.dataset), "box"), now)

    def claimed(seconds_ago: float) -> None:
        body = {"started_at": (now - dt.timedelta(seconds=seconds_ago)).isoformat(), "status": "pruning"}
        gcs.write(rs.state_bucket, name, json.dumps(body).encode(), "application/json")

    claimed(60)  # another sweep may be pruning it right now: left alone
    assert daily_pass(config(), now=now).pruned == 0
    assert key(old) in rs.remote_runs("box")

    claimed(VERIFY_TIMEOUT_S + 120)  # no invocation lives that long: its holder was stopped
    assert daily_pass(config(), now=now).pruned == 1
    assert key(old) not in rs.remote_runs("box")
    assert gcs.read_json(rs.state_bucket, name)["status"] == "done"
    assert [r.status for r in rs.results_for(old)] == ["in_sync", "pruned"]


@contextmanager
def read_only(rs: RetentionStack, run_key: str) -> Iterator[None]:
    """The run folder at the stack's sshd made read-only for the SFTP user (as a partner's
    process or permissions would): its files cannot be removed."""
    with factory.opened("sftp:local", config()) as sftp:
        assert isinstance(sftp, SftpDestination)
        path = sftp.remote_path(f"{rs.dataset}/{run_key}")
        with sftp.pool.session() as session:
            session.sftp.chmod(path, 0o555)
        try:
            yield
        finally:
            with sftp.pool.session() as session:
                session.sftp.chmod(path, 0o755)


def test_a_folder_the_destination_refuses_to_remove_does_not_stop_the_older_ones(
    rstack_factory: Callable[..., RetentionStack],
) -> None:
    """Newest first: the first prunable folder failing permanently stopped the prune, so every
    older folder was kept, day after day."""
    rs = rstack_factory(daily=1)
    oldest, refused, newest = (rs.run_of(day, "sftp:local") for day in (D1, D2, D3))
    with read_only(rs, key(refused)), pytest.raises(PermanentError) as failure:
        prune(config(), dataset=rs.dataset, destination="sftp:local")
    text = str(failure.value)
    assert "1 folder(s) not pruned" in text and refused.run_id in text and "permission denied" in text
    assert rs.remote_runs("sftp:local") == {key(refused), key(newest)}
    assert [r.status for r in rs.results_for(oldest, "sftp:local")] == ["in_sync", "pruned"]
    assert [r.status for r in rs.results_for(refused, "sftp:local")] == ["in_sync"]

    # once the folder can be removed, the next prune removes it
    assert prune(config(), dataset=rs.dataset, destination="sftp:local").count("pruned") == 1
    assert rs.remote_runs("sftp:local") == {key(newest)}


def test_offsite_prune_goes_on_with_the_other_entries_after_a_refused_folder(
    rstack_factory: Callable[..., RetentionStack],
) -> None:
    """The dataset comes before the query export: its refused folder stopped ``offsite prune``
    before the export's old day was looked at."""
    rs = rstack_factory(daily=1)
    _, refused, _ = (rs.run_of(day, "sftp:local") for day in (D1, D2, D3))
    old_day = rs.run_of(D1, "sftp:local", query=True)
    rs.run_of(D2, "sftp:local", query=True)
    with read_only(rs, key(refused)), pytest.raises(PermanentError, match="1 folder.s. not pruned"):
        prune(config(), destination="sftp:local")
    assert rs.remote_days("sftp:local") == {f"{D2:%Y%m%d}"}
    assert [r.status for r in rs.results_for(old_day, "sftp:local")] == ["in_sync", "pruned"]


def test_the_daily_pass_records_the_refused_folder_and_prunes_the_others(
    rstack_factory: Callable[..., RetentionStack],
) -> None:
    rs = rstack_factory(daily=1)
    oldest, refused, _ = (rs.run_of(day, "sftp:local") for day in (D1, D2, D3))
    now = dt.datetime.now(dt.UTC)
    with read_only(rs, key(refused)):
        summary = daily_pass(config(), now=now)
    assert (summary.pruned, summary.failures) == (1, 1)
    assert key(oldest) not in rs.remote_runs("sftp:local")
    claim = gcs.read_json(rs.state_bucket, claim_name((config().dataset(rs.dataset), "sftp:local"), now))
    assert claim["status"] == "failed" and claim["pruned"] == 1 and refused.run_id in claim["reason"]


def test_a_round_that_ends_with_a_refused_folder_leaves_no_cursor(
    rstack_factory: Callable[..., RetentionStack],
) -> None:
    """The round reached its last table and failed there (a folder refused): it is over, so the
    next day's round starts at the first table. Before, the cursor saved as that table started
    was left behind, and the next round skipped every table before it."""
    from shared.retention.scheduled import cursor_name

    rs = rstack_factory(daily=1)
    _, refused, _ = (rs.run_of(day, "sftp:local") for day in (D1, D2, D3))
    entry = config().dataset(rs.dataset)
    assert entry is not None
    now = dt.datetime.now(dt.UTC)
    with read_only(rs, key(refused)):
        summary = daily_pass(config(), now=now)
    assert summary.failures == 1
    assert gcs.read_json(rs.state_bucket, claim_name((entry, "sftp:local"), now))["status"] == "failed"
    assert gcs.stat(rs.state_bucket, cursor_name((entry, "sftp:local"))) is None
