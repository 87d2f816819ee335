"""The restore drill on the whole local stack: tables exported and delivered to the OpenSSH
sshd, then drilled by the restore_drill function (the local config drills ``sales`` from
``sftp:local`` into ``drill_scratch``): restore_verified / restore_failed on verify-results and
in the run history, the alert, the scratch tables dropped, the staging objects deleted, the
round-robin pick, and ``offsite status``."""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from devstack.state import StackInfo
from offsite.cli import app
from shared import runtime
from shared.gcp import clients, gcs
from shared.messages import VerifyResult
from shared.reporting.alert_outbox import GcsOutbox, group_of
from shared.reporting.alerts import ProcessRateLimiter, flush
from shared.restore.drill import STAGING_PREFIX, choose
from shared.restore.drill_records import read_record
from shared.topology import RESTORE_DRILLS
from tests.exports.conftest import Puller
from tests.restore.test_roundtrip import damage_at_rest, export_and_wait, make_table
from tests.verify.test_pipeline import wait_for

pytestmark = pytest.mark.stack
SCRATCH = "drill_scratch"
WAIT_S = 120.0


@pytest.fixture
def drill_env(stack_env: StackInfo) -> StackInfo:
    clients.bigquery_client().create_dataset(f"{stack_env.project}.{SCRATCH}", exists_ok=True)
    return stack_env


def drill_result(info: StackInfo, run_id: str) -> VerifyResult:
    """The drill's result of ``run_id`` in the run history (waits for it)."""
    results = wait_for(
        info.state_bucket,
        run_id,
        lambda rs: any(r.status in ("restore_verified", "restore_failed") for r in rs),
        f"the restore drill result of {run_id}",
    )
    [result] = [r for r in results if r.status in ("restore_verified", "restore_failed")]
    return result


def publish_drill(info: StackInfo, picks: list[tuple[str, str]], drill_id: str) -> None:
    """A drill of these (table, run) picks: the form the function's own continuations take."""
    body = {"dataset": "sales", "drill_id": drill_id, "picks": [{"table": t, "run_id": r} for t, r in picks]}
    info.pubsub_admin().publish(RESTORE_DRILLS, json.dumps(body).encode())


def leftovers(info: StackInfo, run_id: str) -> tuple[list[str], list[str]]:
    """Scratch tables and staged objects the drill of ``run_id`` left behind."""
    tables = [
        t.table_id for t in clients.bigquery_client().list_tables(f"{info.project}.{SCRATCH}") if run_id in t.table_id
    ]
    staged = [o.name for o in gcs.list_prefix(info.state_bucket, f"{STAGING_PREFIX}/{run_id}/")]
    return tables, staged


def test_a_drill_restores_two_tables_proves_them_and_leaves_nothing(drill_env: StackInfo) -> None:
    make_table("drill_a", False)
    make_table("drill_b", True)
    run_a = export_and_wait(drill_env, "drill_a", "PARQUET")
    run_b = export_and_wait(drill_env, "drill_b", "AVRO")

    config, now = runtime.config(), dt.datetime.now(dt.UTC)
    wide = config.model_copy(
        update={
            "datasets": tuple(
                d.model_copy(update={"restore_drill": d.restore_drill.model_copy(update={"sample": 20})})
                for d in config.datasets
                if d.restore_drill is not None
            )
        }
    )
    picked = {p.table: p.run_id for p in choose(wide, "sales", now)}
    assert picked["drill_a"] == run_a and picked["drill_b"] == run_b  # newest in_sync run of each table

    publish_drill(drill_env, [("drill_a", run_a), ("drill_b", run_b)], "t1")  # b goes on as a continuation
    for run_id, table in ((run_a, "drill_a"), (run_b, "drill_b")):
        result = drill_result(drill_env, run_id)
        assert result.status == "restore_verified", result.reason
        assert result.destination == "sftp:local" and result.stage == "restore_drill"
        assert result.source is not None and result.source.table == table
        assert "equal (row count, schema, fingerprint)" in (result.reason or "")
        assert leftovers(drill_env, run_id) == ([], [])  # scratch table dropped, staging deleted

    record = read_record(config, "sales")
    assert record["tables"]["drill_a"]["run_id"] == run_a
    assert record["last_verified"]["run_id"] == run_b and record["last_verified"]["table"] == "drill_b"
    # round-robin: the tables just drilled come after every table not drilled since
    order = [p.table for p in choose(wide, "sales", dt.datetime.now(dt.UTC))]
    assert order[-2:] == ["drill_a", "drill_b"]

    status = CliRunner().invoke(app, ["status", "--since", "1h"])
    assert status.exit_code == 0, status.output
    assert f"restore drill sales: last proven restore sales.drill_b run {run_b} from sftp:local" in status.output
    assert "ago)" in status.output
    listed = CliRunner().invoke(app, ["restore-drill", "status", "--json"])
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.stdout)
    assert row["dataset"] == "sales" and row["last_proven"]["run_id"] == run_b and row["age_s"] >= 0

    # the scheduled form: the function picks the sample itself (2 tables, one per invocation),
    # the first two of the round-robin order
    turn = [p.table for p in choose(wide, "sales", dt.datetime.now(dt.UTC))][:2]
    started = dt.datetime.now(dt.UTC).isoformat()
    drill_env.pubsub_admin().publish(RESTORE_DRILLS, json.dumps({"dataset": "sales"}).encode())
    deadline = time.monotonic() + WAIT_S
    while True:
        drilled = [t for t, o in read_record(config, "sales")["tables"].items() if o["at"] > started]
        if len(drilled) == 2:
            break
        assert time.monotonic() < deadline, f"the scheduled drill drilled {drilled}"
        time.sleep(0.5)
    assert sorted(drilled) == sorted(turn)

    # by hand, waiting for the proof: `offsite restore-drill run sales --wait` follows the drill's
    # sample and each table's report; exit 0 only when every table restored equal
    turn = [p.table for p in choose(config, "sales", dt.datetime.now(dt.UTC))]
    waited = CliRunner().invoke(app, ["restore-drill", "run", "sales", "--wait", "--json", "--timeout", str(WAIT_S)])
    outcome = json.loads(waited.stdout)
    assert outcome["complete"] is True and outcome["error"] is None, outcome
    assert [t["table"] for t in outcome["tables"]] == turn  # the config's sample, round-robin
    recorded = read_record(config, "sales")["tables"]
    for table in outcome["tables"]:
        assert (
            table["status"] == recorded[table["table"]]["status"]
            and table["run_id"] == recorded[table["table"]]["run_id"]
        )
    proven = all(t["status"] == "restore_verified" for t in outcome["tables"])
    assert waited.exit_code == (0 if proven else 1), waited.output


def test_a_damaged_copy_fails_the_drill_naming_the_file_and_alerts(drill_env: StackInfo) -> None:
    make_table("drill_dmg", False)
    run_id = export_and_wait(drill_env, "drill_dmg", "PARQUET")
    # Weeks later: the export has expired from GCS and the copy has rotted. Nothing can deliver it
    # again, so a verify round still running (a duplicate event) cannot heal it before the drill.
    for obj in gcs.list_prefix(drill_env.bucket, "exports/sales/drill_dmg/"):
        if run_id in obj.name and obj.name.endswith(".parquet"):
            gcs.delete(drill_env.bucket, obj.name)
    folder = Path(drill_env.sftp.directory) / "sales" / "drill_dmg"
    [victim] = [p for p in folder.rglob("*.parquet") if run_id in str(p)]
    damage_at_rest(victim)

    publish_drill(drill_env, [("drill_dmg", run_id)], "t2")
    result = drill_result(drill_env, run_id)
    assert result.status == "restore_failed"
    assert victim.name in (result.reason or "") and "damaged" in (result.reason or "")
    assert leftovers(drill_env, run_id) == ([], [])

    deadline = time.monotonic() + WAIT_S
    while True:
        with urllib.request.urlopen(drill_env.webhook_messages_url, timeout=10) as resp:
            alerts = [json.dumps(m) for m in json.loads(resp.read())]
        if any(run_id in a and "restore_failed" in a for a in alerts):
            break
        if _held_back(run_id):
            # The run alerted less than alerts.min_interval_s ago (the duplicate verify round above
            # failed to heal the rotted copy): the alert waits in the outbox for the verify
            # sweep's flush, which is what sends it once that interval has passed.
            flush(_group(run_id), runtime.config(), limiter=ProcessRateLimiter())
        assert time.monotonic() < deadline, f"no restore_failed alert for {run_id}: {alerts[-3:]}"
        time.sleep(0.5)

    record = read_record(runtime.config(), "sales")
    assert record["last"]["status"] == "restore_failed" and record["last"]["run_id"] == run_id
    status = CliRunner().invoke(app, ["restore-drill", "status"])
    assert status.exit_code == 0 and f"last drill restore_failed: drill_dmg run {run_id}" in status.output


def _group(run_id: str) -> str:
    return group_of(VerifyResult(status="restore_failed", run_id=run_id))


def _held_back(run_id: str) -> bool:
    """The run's restore_failed alert is queued, held back by the per-run rate limit."""
    outbox = GcsOutbox(runtime.config().state_bucket_name)
    return any(p.result.status == "restore_failed" for p in outbox.pending(_group(run_id)))


def test_restore_drill_run_publishes_and_refuses_a_dataset_without_a_drill(
    drill_env: StackInfo, tmp_path: Path
) -> None:
    bad = CliRunner().invoke(app, ["restore-drill", "run", "nope"])
    assert bad.exit_code == 2 and "no dataset 'nope'" in bad.output
    # the request goes to a dataset the stack's functions do not drill (they reject it), so this
    # test starts no drill that could pick the other tests' tables
    raw = yaml.safe_load(drill_env.config_path.read_text())
    raw["datasets"].append({"name": "drill_only", "restore_drill": {"schedule": "0 6 * * *", "to": SCRATCH}})
    other = tmp_path / "config.yaml"
    other.write_text(yaml.safe_dump(raw))
    subscription = f"projects/{drill_env.project}/subscriptions/drill-cli-{uuid.uuid4().hex[:8]}"
    clients.subscriber_client().create_subscription(
        name=subscription, topic=f"projects/{drill_env.project}/topics/{RESTORE_DRILLS}"
    )
    ok = CliRunner().invoke(app, ["restore-drill", "run", "drill_only", "--json", "--config", str(other)])
    assert ok.exit_code == 0, ok.output
    published = json.loads(ok.stdout)
    assert published["topic"] == RESTORE_DRILLS and published["request"] == {
        "dataset": "drill_only",
        "picks": [],
        "schema_version": 1,
    }
    [message] = Puller(subscription).pull(lambda m: m.get("dataset") == "drill_only", timeout_s=WAIT_S)
    assert message["_attributes"]["origin"] == "offsite-restore-drill"
    # --wait: the stack's function refuses the start (its config has no such drill), which ends the wait
    refused = CliRunner().invoke(
        app, ["restore-drill", "run", "drill_only", "--wait", "--timeout", str(WAIT_S), "--config", str(other)]
    )
    assert refused.exit_code == 1, refused.output
    assert "error: restore drill drill_only m" in refused.stderr and ": rejected: " in refused.stderr
    assert "no dataset 'drill_only'" in refused.stderr


def test_a_scratch_dataset_that_does_not_exist_fails_the_drill_saying_so(drill_env: StackInfo, tmp_path: Path) -> None:
    """``restore_drill.to`` naming a dataset nobody created (docs/operations.md: "create the
    scratch dataset yourself") is said as such, before a file is staged: not BigQuery's load
    error about a staged file."""
    from shared.config.load import load_config
    from shared.restore.drill import drill_table
    from shared.restore.drill_records import DrillPick

    make_table("drill_noscratch", False)
    run_id = export_and_wait(drill_env, "drill_noscratch", "PARQUET")
    missing = f"no_scratch_{uuid.uuid4().hex[:6]}"
    raw = yaml.safe_load(drill_env.config_path.read_text())
    [sales] = [d for d in raw["datasets"] if d["name"] == "sales"]
    sales["restore_drill"]["to"] = missing
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))

    pick = DrillPick(table="drill_noscratch", run_id=run_id)
    outcome = drill_table(load_config(path), "sales", pick, "t9", time.monotonic() + WAIT_S)
    assert outcome.status == "restore_failed"
    assert outcome.reason == (
        f"restore: the dataset {drill_env.project}.{missing} of {outcome.target} does not exist;"
        f" create it first (bq mk --dataset {drill_env.project}:{missing})"
    )
    assert [o.name for o in gcs.list_prefix(drill_env.state_bucket, f"{STAGING_PREFIX}/{run_id}/")] == []
