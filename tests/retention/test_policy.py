"""The retention policy (shared.retention.policy) and the ``retention:`` config type."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest

from shared.config import Retention
from shared.errors import ConfigError
from shared.retention.policy import Dated, decide, kept
from tests.unit.config_files import MINIMAL, load

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def run(day: str, hour: int | None = 2, name: str | None = None) -> Dated[str]:
    date = dt.date.fromisoformat(day)
    started = None if hour is None else dt.datetime.combine(date, dt.time(hour), dt.UTC)
    label = name or f"{day}@{hour}"
    return Dated(date, started, label, label)


def test_daily_keeps_the_newest_run_of_each_of_the_newest_days() -> None:
    runs = [run("2025-01-01"), run("2025-01-02"), run("2025-01-02", 5), run("2025-01-04"), run("2025-01-03")]
    assert sorted(kept(runs, Retention(daily=2))) == ["2025-01-03@2", "2025-01-04@2"]
    assert sorted(kept(runs, Retention(daily=3))) == ["2025-01-02@5", "2025-01-03@2", "2025-01-04@2"]


def test_monthly_counts_months_that_have_a_run() -> None:
    runs = [run("2024-10-31"), run("2024-12-01"), run("2024-12-30"), run("2025-02-01"), run("2025-02-02")]
    reasons = kept(runs, Retention(daily=1, monthly=3))
    assert reasons == {
        "2025-02-02@2": "kept: daily 1 of 1, monthly 1 of 3",
        "2024-12-30@2": "kept: monthly 2 of 3",
        "2024-10-31@2": "kept: monthly 3 of 3",  # November had no run: it does not count
    }


def test_same_day_runs_are_ordered_by_start_and_unknown_starts_are_oldest() -> None:
    runs = [run("2025-01-02", None, "unknown"), run("2025-01-02", 1, "early"), run("2025-01-02", 9, "late")]
    assert list(kept(runs, Retention(daily=1))) == ["late"]


def test_only_runs_older_than_the_newest_in_sync_one_are_pruned() -> None:
    runs = [run(f"2025-01-0{d}") for d in range(1, 7)]
    in_sync = {"2025-01-02@2", "2025-01-04@2"}
    asked: list[str] = []

    def is_in_sync(entry: Dated[str]) -> bool:
        asked.append(entry.name)
        return entry.name in in_sync

    decisions = decide(runs, Retention(daily=1), is_in_sync=is_in_sync, is_settled=lambda e: e.name != "2025-01-01@2")
    assert [(d.entry.name[8:10], d.action) for d in decisions] == [
        ("06", "keep"),
        ("05", "protect"),  # newer than every in_sync run
        ("04", "protect"),  # the newest in_sync run itself
        ("03", "prune"),
        ("02", "prune"),
        ("01", "protect"),  # older, but its delivery is not settled
    ]
    assert decisions[3].why == "newer run folder 2025-01-04@2 is in_sync here"
    assert asked == ["2025-01-06@2", "2025-01-05@2", "2025-01-04@2"]  # asked lazily, newest first


def test_nothing_in_sync_keeps_everything() -> None:
    runs = [run(f"2025-01-0{d}") for d in range(1, 5)]
    decisions = decide(runs, Retention(daily=1), is_in_sync=lambda e: False, is_settled=lambda e: True)
    assert [d.action for d in decisions] == ["keep", "protect", "protect", "protect"]


@pytest.mark.parametrize(
    ("retention", "message"),
    [
        ("{daily: 0}", r"^datasets\[0\]\.retention\.daily: 0 must be at least 1$"),
        ("{daily: 3, monthly: -1}", r"^datasets\[0\]\.retention\.monthly: -1 must be at least 0$"),
        ("{monthly: 2}", r"^datasets\[0\]\.retention\.daily: required field is missing$"),
        ("{daily: 2, weekly: 2}", r"^datasets\[0\]\.retention: unknown key 'weekly' \(known: daily, monthly\)$"),
        ("{daily: two}", r"^datasets\[0\]\.retention\.daily: expected an integer, got 'two'$"),
        ("7", r"^datasets\[0\]\.retention: "),
    ],
)
def test_bad_retention_names_the_field(tmp_path: Path, retention: str, message: str) -> None:
    text = MINIMAL.replace(
        '    destinations: ["sftp:acme"]\n', f'    destinations: ["sftp:acme"]\n    retention: {retention}\n'
    )
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, text)


def test_retention_is_optional_and_defaults_to_keeping_everything(tmp_path: Path) -> None:
    config = load(tmp_path)
    assert config.datasets[0].retention is None
    text = MINIMAL + "exports:\n  - name: e\n    sql: 'SELECT {date}'\n    retention: {daily: 7, monthly: 12}\n"
    assert load(tmp_path, text).exports[0].retention == Retention(daily=7, monthly=12)


def test_a_flat_destination_is_skipped_and_said_so(tmp_path: Path) -> None:
    from shared.destinations.base import Abilities
    from shared.destinations.memory import MemoryDestination
    from shared.retention.prune import prune_target
    from shared.retention.summary import PrunePass, PruneSummary

    text = MINIMAL.replace(
        '    destinations: ["sftp:acme"]\n', '    destinations: ["sftp:acme"]\n    retention: {daily: 1}\n'
    )
    config = load(tmp_path, text)
    flat = MemoryDestination("sftp:acme", Abilities(layout="flat"))
    flat.put("sales_orders_20250101-000000000000.parquet", io.BytesIO(b"x"), 1)
    summary = PruneSummary(dry_run=False)
    prune_target(PrunePass(config, summary), config.datasets[0], flat)
    assert summary.outcomes == []
    assert summary.skipped == ["sales at memory: not pruned (flat layout: every day's files share one folder)"]
    assert [f.path for f in flat.list()] == ["sales_orders_20250101-000000000000.parquet"]
