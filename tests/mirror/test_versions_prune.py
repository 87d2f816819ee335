"""Retention of a mirrored bucket's versions: dated ``_offsite_versions/`` folders kept by
``daily``/``monthly``, pruned only while the bucket's latest reconcile at that destination is
in_sync, by ``offsite prune`` (and its dry run) and by the verify sweep's daily pass; every
prune reported on verify-results and in ``offsite status``."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

from typer.testing import CliRunner

from offsite.cli import app
from offsite.cli.ops import status_rows
from shared.destinations import factory
from shared.gcp import gcs
from shared.mirror.versions import remove_copy
from shared.reporting.history import read
from shared.retention.prune import prune
from shared.retention.scheduled import daily_pass
from tests.mirror.conftest import DESTINATIONS, MirrorStack, sha1

DAYS = ["2025-01-10", "2025-01-09", "2025-01-08", "2024-12-31", "2024-12-15", "2024-11-30"]
KEPT = {"2025-01-10", "2025-01-09", "2024-12-31"}  # daily 2; monthly 2: January's newest, December's newest
PRUNABLE = {"2025-01-08", "2024-12-15", "2024-11-30"}


def _with_versions(m: MirrorStack) -> None:
    """A live object, and one removed copy on each of DAYS at both destinations."""
    m.finalized(m.put("live.txt", b"live"))
    mirror = m.config.mirror(m.bucket)
    assert mirror is not None
    for day in DAYS:
        name = f"old/{day}.txt"
        m.finalized(m.put(name, day.encode()))
        m.remove(name)
        when = dt.datetime.fromisoformat(day).replace(hour=12, tzinfo=dt.UTC)
        for destination in DESTINATIONS:
            with factory.opened(destination, m.config) as dest:
                remove_copy(mirror, dest, f"{m.folder}/{name}", now=when)


def _days(m: MirrorStack, destination: str) -> set[str]:
    return {path.split("/")[1] for path in m.copies(destination) if path.startswith("_offsite_versions/")}


def _actions(outcomes: list, destination: str) -> dict[str, str]:  # type: ignore[type-arg]
    return {o.date: o.action for o in outcomes if o.destination == destination}


def test_versions_are_pruned_by_policy_only_where_the_latest_reconcile_is_in_sync(
    mirror_factory: Callable[..., MirrorStack],
) -> None:
    m = mirror_factory(delete="mirror", retention={"daily": 2, "monthly": 2})
    _with_versions(m)
    for destination in DESTINATIONS:
        assert _days(m, destination) == set(DAYS)

    # No reconcile yet: everything beyond the policy is protected.
    before = prune(m.config, dry_run=True, bucket=m.bucket)
    for destination in DESTINATIONS:
        assert _actions(before.outcomes, destination) == {
            **dict.fromkeys(KEPT, "keep"),
            **dict.fromkeys(PRUNABLE, "protect"),
        }

    # The SFTP copy drifts: its latest reconcile is a mismatch, Box's is in_sync.
    m.sftp_path("live.txt").unlink()
    assert {str(r.destination): r.status for r in m.reconcile(fix=False)} == {
        "box": "in_sync",
        "sftp:local": "mismatch",
    }

    dry = prune(m.config, dry_run=True, bucket=m.bucket)
    assert _actions(dry.outcomes, "box") == {**dict.fromkeys(KEPT, "keep"), **dict.fromkeys(PRUNABLE, "prune")}
    assert _actions(dry.outcomes, "sftp:local") == {**dict.fromkeys(KEPT, "keep"), **dict.fromkeys(PRUNABLE, "protect")}
    assert m.results() == []  # a dry run publishes nothing
    for destination in DESTINATIONS:
        assert _days(m, destination) == set(DAYS)  # and removes nothing

    done = prune(m.config, bucket=m.bucket)
    assert _actions(done.outcomes, "box") == {**dict.fromkeys(KEPT, "keep"), **dict.fromkeys(PRUNABLE, "pruned")}
    assert _days(m, "box") == KEPT and m.copies("box")["live.txt"] == sha1(b"live")
    assert _days(m, "sftp:local") == set(DAYS)
    reported = m.results()
    assert sorted((r.status, str(r.destination), r.stage, r.date) for r in reported) == [
        ("pruned", "box", "prune", day) for day in sorted(PRUNABLE)
    ]
    for result in reported:
        assert result.run_id == f"mirror-{m.bucket}-v{result.date.replace('-', '')}"  # type: ignore[union-attr]
        assert result.source is not None and result.source.bucket == m.bucket
        assert "retention daily=2, monthly=2" in (result.reason or "") and "_offsite_versions" in (result.reason or "")

    # A second prune finds nothing more to do and reports nothing twice.
    again = prune(m.config, bucket=m.bucket, destination="box")
    assert _actions(again.outcomes, "box") == dict.fromkeys(KEPT, "keep")
    assert m.results() == []

    # offsite status: one row per pruned versions folder, like a pruned run folder.
    history = read(m.config.state_bucket_name, dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    rows = {row["run_id"]: row for row in status_rows(history)}
    for day in PRUNABLE:
        row = rows[f"mirror-{m.bucket}-v{day.replace('-', '')}"]
        assert row["destinations"] == {"box": "pruned"} and row["last_failure"] is None

    # The reconcile repairs SFTP; the daily pass then prunes there too.
    m.reconcile()
    m.continuations()
    assert {str(r.destination): r.status for r in m.reconcile(fix=False)} == dict.fromkeys(DESTINATIONS, "in_sync")
    daily = daily_pass(m.config, now=dt.datetime.now(dt.UTC))
    assert daily.pruned == len(PRUNABLE)
    assert _days(m, "sftp:local") == KEPT
    assert sorted(str(r.destination) for r in m.results() if r.status == "pruned") == ["sftp:local"] * len(PRUNABLE)


def test_a_mismatch_after_an_in_sync_reconcile_protects_the_versions_again(
    mirror_factory: Callable[..., MirrorStack],
) -> None:
    m = mirror_factory(delete="mirror", retention={"daily": 1}, destinations=["box"])
    _with_versions(m)
    assert [r.status for r in m.reconcile(fix=False)] == ["in_sync"]
    with factory.opened("box", m.config) as box:
        box.delete(f"{m.folder}/live.txt")
    assert [r.status for r in m.reconcile(fix=False)] == ["mismatch"]

    summary = prune(m.config, bucket=m.bucket)

    assert summary.count("pruned") == 0 and summary.count("protect") == len(DAYS) - 1
    assert _days(m, "box") == set(DAYS)


def test_cli_prune_dry_run_lists_the_versions_folders(mirror_factory: Callable[..., MirrorStack]) -> None:
    m = mirror_factory(delete="mirror", retention={"daily": 5}, destinations=["sftp:local"])
    _with_versions(m)
    m.reconcile(fix=False)
    runner = CliRunner()

    dry = runner.invoke(app, ["prune", "--dry-run", "--bucket", m.bucket])
    assert dry.exit_code == 0, dry.output
    assert f"{m.folder}/_offsite_versions/2024-11-30" in dry.output
    assert "would prune 1 run folder(s); kept 5, protected 0" in dry.output
    as_json = runner.invoke(app, ["prune", "--dry-run", "--bucket", m.bucket, "--json"])
    assert {(o["date"], o["action"]) for o in json.loads(as_json.output)["outcomes"]} == {
        *((day, "keep") for day in DAYS[:5]),
        ("2024-11-30", "prune"),
    }
    assert _days(m, "sftp:local") == set(DAYS)

    unknown = runner.invoke(app, ["prune", "--bucket", "not-mirrored"])
    assert unknown.exit_code == 2 and "--bucket: 'not-mirrored' is not a mirrored bucket" in unknown.output
    both = runner.invoke(app, ["prune", "--bucket", m.bucket, "--dataset", "sales"])
    assert both.exit_code == 2 and "--bucket: cannot be combined with --dataset or --export" in both.output


def test_a_prune_stopped_before_reporting_is_reported_by_the_next(mirror_factory: Callable[..., MirrorStack]) -> None:
    m = mirror_factory(delete="mirror", retention={"daily": 5}, destinations=["box"])
    _with_versions(m)
    m.reconcile(fix=False)
    m.results()
    # What a prune that stopped after removing the folder leaves: the pruning marker, no result.
    marker = f"mirror/{m.bucket}/box/pruning-2024-11-30.json"
    gcs.write(m.config.state_bucket_name, marker, b"{}", "application/json")
    with factory.opened("box", m.config) as box:
        box.delete_folder(f"{m.folder}/_offsite_versions/2024-11-30")

    summary = prune(m.config, bucket=m.bucket)

    assert summary.count("pruned") == 0
    reported = m.results()
    assert [(r.status, r.date, r.reason) for r in reported] == [
        ("pruned", "2024-11-30", "removed by an earlier prune, reported now")
    ]
