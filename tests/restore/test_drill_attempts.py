"""Drill attempts on the local stack that must not disturb each other or repeat themselves: two
drills of one table at once (a manual run during the scheduled one), a budget that runs out
while files are staged, a redelivered drill message, and a dead-lettered one."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid

import pytest

from devstack.state import StackInfo
from shared import runtime
from shared.destinations.factory import opened
from shared.gcp import clients, gcs
from shared.ids import Status
from shared.restore import restore as restoring
from shared.restore.drill import STAGING_PREFIX, drill_table, handle
from shared.restore.drill_records import DrillPick, DrillRequest, done_name, picks_name, read_record
from shared.restore.drill_watch import read_progress, wait_for_drill
from shared.restore.stage import OutOfTime, stage_file
from shared.stages.dead_letters import on_dead_letter
from shared.topology import RESTORE_DRILLS
from tests import cloudevents
from tests.exports.conftest import Puller
from tests.restore.test_drill import drill_env, leftovers
from tests.restore.test_roundtrip import export_and_wait, make_table
from tests.verify.test_pipeline import wait_for

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


def test_a_start_message_hands_its_sample_on_once(drill_env: StackInfo) -> None:
    """A start (``{"dataset": D}``) has no drill id of its own: it takes its Pub/Sub message id's,
    saves its sample and publishes it as the drill's first continuation, which names the drill
    (so a dead letter of it can settle the drill; below). Its redelivery finds the sample, and
    that it was handed on: it publishes nothing, so no table is drilled twice. Before, a start
    drilled its first table itself, and its dead letter named no drill: a wait on it ran out."""
    exported(drill_env, "attempt_start")  # at least one in_sync run to sample
    config = runtime.config()
    message_id = str(uuid.uuid4().int)[:16]
    drill_id = f"m{message_id}"
    subscription = f"projects/{drill_env.project}/subscriptions/drill-start-{uuid.uuid4().hex[:8]}"
    clients.subscriber_client().create_subscription(
        name=subscription, topic=f"projects/{drill_env.project}/topics/{RESTORE_DRILLS}"
    )

    def deliver() -> object:
        return handle(
            config,
            DrillRequest(dataset="sales"),
            started=time.monotonic(),
            now=dt.datetime.now(dt.UTC),
            message_id=message_id,
        )

    assert deliver() is None  # nothing drilled here: the sample went on
    saved = gcs.read_json(config.state_bucket_name, picks_name("sales", drill_id))
    assert saved is not None and saved["handed_on"] is True and saved["picks"], saved
    assert deliver() is None  # the redelivery
    watch = Puller(subscription)
    [continuation] = watch.pull(lambda m: m.get("drill_id") == drill_id, timeout_s=30)
    assert continuation["picks"] == saved["picks"]
    assert [m for m in watch.drain() if m.get("drill_id") == drill_id and m["picks"] == saved["picks"]] == [
        continuation
    ]
    # the stack's restore_drill function drills the sample from that continuation
    progress = wait_for_drill(config, "sales", drill_id, message_id=None, since=None, timeout_s=240)
    assert progress.complete, progress.to_dict()


def _dead_letter(info: StackInfo, data: bytes) -> dict[str, object]:
    """What the report subscription of the restore_drill function's dead-letter topic pushes to verify."""
    subscription = "restore-drill-restore-drills"
    attributes = {
        "CloudPubSubDeadLetterSourceSubscription": f"projects/{info.project}/subscriptions/{subscription}",
        "CloudPubSubDeadLetterSourceDeliveryCount": "5",
    }
    return cloudevents.pubsub_event(info.project, f"{subscription}-dlq", data, attributes, subscriber="verify")


def test_a_dead_lettered_drill_message_fails_its_tables_and_ends_the_drill(drill_env: StackInfo) -> None:
    """The drill's destination down for every attempt: the message is dead-lettered. Its tables
    not reported yet become restore_failed (done markers, the dataset's record), so a wait on the
    drill ends; the dead letter is reported once as the failed drill of its first table. Before,
    `offsite restore-drill run --wait` waited out its 30 minutes and the status showed nothing."""
    config = runtime.config()
    drill_id = f"dl{uuid.uuid4().hex[:8]}"
    first = DrillPick(table="attempt_dead_a", run_id=f"r{uuid.uuid4().hex[:12]}")
    second = DrillPick(table="attempt_dead_b", run_id=f"r{uuid.uuid4().hex[:12]}")
    request = DrillRequest(dataset="sales", drill_id=drill_id, picks=[first, second])
    saved = {"picks": [first.model_dump(), second.model_dump()], "handed_on": True}  # as its start saved them
    gcs.write_if_absent(config.state_bucket_name, picks_name("sales", drill_id), json.dumps(saved).encode())
    dead = _dead_letter(drill_env, request.to_json())
    on_dead_letter(dead, config)
    on_dead_letter(dead, config)  # Pub/Sub may push a dead letter twice: nothing more is reported

    progress = read_progress(config, "sales", drill_id)
    assert progress.complete and not progress.proven
    tables = {t["table"]: t for t in progress.tables}
    assert tables["attempt_dead_a"]["status"] == Status.RESTORE_FAILED
    assert (
        "dead-lettered after 5 delivery attempts on restore-drill-restore-drills" in tables["attempt_dead_a"]["reason"]
    )
    assert tables["attempt_dead_b"]["reason"].startswith("not restored: the drill stopped at attempt_dead_a: ")
    record = read_record(config, "sales")["tables"]
    assert (
        record["attempt_dead_b"]["status"] == "restore_failed" and record["attempt_dead_b"]["run_id"] == second.run_id
    )
    [reported] = wait_for(
        drill_env.state_bucket, first.run_id, lambda rs: len(rs) >= 1, f"the dead letter's result for {first.run_id}"
    )
    assert (reported.status, reported.stage, str(reported.destination)) == (
        Status.FAILED,
        "restore_drill",
        "sftp:local",
    )
    assert reported.source is not None and reported.source.table == "attempt_dead_a"
