"""Drill attempts on the local stack that must not disturb each other or repeat themselves: two
drills of one table at once (a manual run during the scheduled one), a budget that runs out
while files are staged, and a redelivered drill message."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from devstack.state import StackInfo
from shared import runtime
from shared.destinations.factory import opened
from shared.gcp import gcs
from shared.ids import Status
from shared.restore import restore as restoring
from shared.restore.drill import STAGING_PREFIX, drill_table, handle
from shared.restore.drill_records import DrillPick, DrillRequest, done_name, read_record
from shared.restore.stage import OutOfTime, stage_file
from tests.restore.test_drill import drill_env, leftovers
from tests.restore.test_roundtrip import export_and_wait, make_table

pytestmark = pytest.mark.stack
__all__ = ["drill_env"]  # the fixture, used below
_exported: dict[str, str] = {}  # table -> run id, per worker (its stack lives for the session)


def exported(info: StackInfo, table: str) -> str:
    if table not in _exported:
        make_table(table, False)
        _exported[table] = export_and_wait(info, table, "PARQUET")
    return _exported[table]


def test_two_drills_of_one_table_at_once_both_verify(drill_env: StackInfo, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = exported(drill_env, "attempt_overlap")
    config = runtime.config()
    pick = DrillPick(table="attempt_overlap", run_id=run_id)
    real_load = restoring.run_load
    other: dict[str, object] = {}

    def the_other_drill_first(*args: object, **kwargs: object) -> object:
        # drill A has staged its files: drill B (a manual run) runs from start to end, cleanup included
        if "b" not in other:
            other["b"] = None
            other["b"] = drill_table(config, "sales", pick, "bbbb", time.monotonic() + 480)
        return real_load(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(restoring, "run_load", the_other_drill_first)
    a = drill_table(config, "sales", pick, "aaaa", time.monotonic() + 480)
    b = other["b"]
    assert b is not None and b.status == Status.RESTORE_VERIFIED, b  # type: ignore[attr-defined]
    assert a.status == Status.RESTORE_VERIFIED, a.reason
    assert leftovers(drill_env, run_id) == ([], [])


def test_a_budget_spent_before_the_load_fails_the_drill_and_leaves_nothing(drill_env: StackInfo) -> None:
    run_id = exported(drill_env, "attempt_budget")
    pick = DrillPick(table="attempt_budget", run_id=run_id)
    outcome = drill_table(runtime.config(), "sales", pick, "late", time.monotonic() - 1)
    assert outcome.status == Status.RESTORE_FAILED
    assert "did not finish within the budget" in (outcome.reason or "")
    assert "the load was not started" in (outcome.reason or ""), outcome.reason
    assert leftovers(drill_env, run_id) == ([], [])

    # within a file: checked once per upload chunk, and the abandoned upload is no object
    config = runtime.config()
    with opened("sftp:local", config) as destination:
        plan = restoring.plan(
            destination, run_id, target="p.d.t", staging_bucket=config.state_bucket_name, staging_prefix=STAGING_PREFIX
        )
        with pytest.raises(OutOfTime, match="did not finish within the budget: still staging"):
            stage_file(
                destination,
                plan.run,
                plan.run.manifest.files[0],
                config.state_bucket_name,
                plan.staging_folder,
                time.monotonic() - 1,
            )
    assert leftovers(drill_env, run_id) == ([], [])


def test_a_redelivered_drill_message_reports_its_table_once(drill_env: StackInfo) -> None:
    table = "attempt_again"
    run_id = exported(drill_env, table)
    config = runtime.config()
    request = DrillRequest(dataset="sales", drill_id="again1", picks=[DrillPick(table=table, run_id=run_id)])

    def deliver() -> object:
        return handle(config, request, started=time.monotonic(), now=dt.datetime.now(dt.UTC))

    first = deliver()
    assert first is not None and first.status == Status.RESTORE_VERIFIED  # type: ignore[attr-defined]
    reported = read_record(config, "sales")["tables"][table]
    assert deliver() is None  # the redelivery: nothing drilled, nothing reported again
    assert read_record(config, "sales")["tables"][table] == reported
    assert gcs.read_json(config.state_bucket_name, done_name("sales", "again1", table))["run_id"] == run_id
    assert gcs.list_prefix(config.state_bucket_name, f"{STAGING_PREFIX}/{run_id}/") == []


def test_a_redelivered_start_message_drills_its_sample_once(drill_env: StackInfo) -> None:
    """A start (``{"dataset": D}``) has no drill id of its own: it takes its Pub/Sub message id's
    and saves its sample, so its redelivery finds both. Before, the redelivery was a new drill
    with a new sample (the round-robin put the table just drilled last) and restored another table."""
    import uuid

    exported(drill_env, "attempt_start")  # at least one in_sync run to sample
    config = runtime.config()
    message_id = str(uuid.uuid4().int)[:16]

    def deliver() -> object:
        return handle(
            config,
            DrillRequest(dataset="sales"),
            started=time.monotonic(),
            now=dt.datetime.now(dt.UTC),
            message_id=message_id,
        )

    first = deliver()
    assert first is not None
    drilled = first.pick.table  # type: ignore[attr-defined]
    record = read_record(config, "sales")["tables"]
    assert deliver() is None  # the redelivery: the same sample, its first table already reported
    assert read_record(config, "sales")["tables"] == record
    assert gcs.read_json(config.state_bucket_name, done_name("sales", f"m{message_id}", drilled)) is not None
