"""``offsite status``, ``offsite verify``, ``offsite dlq`` and the demo summary, on the local stack."""

from __future__ import annotations

import json
import uuid

import pytest
from typer.testing import CliRunner

from devstack.demo_summary import summary_lines, wait_for_results
from offsite.cli import app
from shared.destinations import memory
from shared.gcp import gcs
from shared.messages import VerifyRequest, VerifyResult
from shared.reporting.results import report
from shared.runtime import config
from shared.topology import VERIFY_REQUESTS
from tests.verify.conftest import VerifyStack

pytestmark = pytest.mark.stack

FILES = {
    "orders_20250108-000000000000.parquet": b"PAR1" + b"o" * 700,
    "orders_20250108-000000000001.parquet": b"PAR1" + b"p" * 300,
}
SECOND = sorted(FILES)[1]
SIZE = sum(map(len, FILES.values()))
runner = CliRunner()


def delivered_run(vstack: VerifyStack):
    run = vstack.new_run(FILES)
    for receipt in vstack.deliver_all(run):
        vstack.receipt(receipt)
    return run


def test_verify_command_checks_locally_and_exits_by_outcome(vstack: VerifyStack) -> None:
    run = delivered_run(vstack)
    ok = runner.invoke(app, ["verify", run.run_id])
    assert ok.exit_code == 0, ok.output
    header, row = ok.stdout.splitlines()  # a plain table: no colour codes, nothing wrapped
    assert header.split() == ["RUN", "SOURCE", "DATE", "DESTINATION", "STATUS", "CHECK", "FILES", "BYTES", "HEALS"]
    assert row.split() == [
        run.run_id,
        "sales.orders",
        "2025-01-08",
        "memory",
        "IN_SYNC",
        "sha1",
        "2/2",
        f"{SIZE}/{SIZE}",
        "0",
    ]
    [ok_check] = json.loads(runner.invoke(app, ["verify", run.run_id, "--json"]).stdout)
    assert ok_check["status"] == "in_sync" and ok_check["run_id"] == run.run_id
    assert (ok_check["files_present"], ok_check["bytes_present"], ok_check["check"]) == (2, SIZE, "sha1")

    memory.process_destination().delete(vstack.remote_path(run, SECOND))
    bad = runner.invoke(app, ["verify", run.run_id, "--destination", "memory", "--json"])
    assert bad.exit_code == 1, bad.output
    [check] = json.loads(bad.output)
    assert check["status"] == "mismatch" and check["missing"] == [SECOND]
    table = runner.invoke(app, ["verify", run.run_id, "--destination", "memory"])
    assert table.exit_code == 1
    row = next(line.split() for line in table.stdout.splitlines() if line.startswith(run.run_id))
    assert row[3:7] == ["memory", "MISMATCH", "sha1", "1/2"]
    assert f"{run.run_id}  sales.orders  2025-01-08  → memory: MISMATCH" in table.stdout
    assert f"  missing: {SECOND}" in table.stdout.splitlines()
    assert len(vstack.results_for(run)) == 1  # the local check publishes nothing
    assert (
        gcs.stat(vstack.bucket, run.folder.prefix + SECOND).metadata.get("offsite-heal-destination") is None
    )  # nor heals


def test_verify_command_reports_a_destination_it_cannot_reach_beside_the_others(vstack: VerifyStack) -> None:
    """One destination down (the partner's sshd stopped): its row says it could not be checked,
    and why; the other destination's check stands; exit 1. Before, the first unreachable
    destination aborted the whole command with one error line, and no destination was shown."""
    import socket

    import yaml

    from shared import runtime

    run = vstack.new_run(FILES, destinations=("memory", "sftp:local"))
    for receipt in vstack.deliver_all(run):
        vstack.receipt(receipt)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    raw = yaml.safe_load(vstack.config_path.read_text())
    raw["destinations"]["sftp"]["local"]["port"] = closed
    vstack.config_path.write_text(yaml.safe_dump(raw))
    runtime.reset()

    out = runner.invoke(app, ["verify", run.run_id, "--json"])
    assert out.exit_code == 1, out.output
    checks = {c["destination"]: c for c in json.loads(out.stdout)}
    assert checks["memory"]["status"] == "in_sync"
    down = checks["sftp:local"]
    assert down["status"] == "failed" and down["stage"] == "verify" and down["files_expected"] == 2
    assert down["reason"].startswith(f"could not be checked: sftp:local: connecting to 127.0.0.1:{closed}: ")
    table = runner.invoke(app, ["verify", run.run_id])
    assert table.exit_code == 1 and f"{run.run_id}  sales.orders  2025-01-08  → sftp:local: FAILED" in table.stdout


def test_verify_command_for_an_unknown_run_or_destination(vstack: VerifyStack) -> None:
    run = delivered_run(vstack)
    unknown = runner.invoke(app, ["verify", "rnosuchrun0001"])
    assert unknown.exit_code == 2 and "no run 'rnosuchrun0001'" in unknown.output
    wrong = runner.invoke(app, ["verify", run.run_id, "--destination", "box"])
    assert wrong.exit_code == 2 and "goes to memory" in wrong.output


def test_verify_publish_sends_a_verify_request(vstack: VerifyStack) -> None:
    sub = f"vreq-{uuid.uuid4().hex[:10]}"
    vstack.admin.create_subscription(sub, VERIFY_REQUESTS)
    result = runner.invoke(app, ["verify", "r12345abc", "--destination", "sftp:local", "--publish"])
    assert result.exit_code == 0, result.output
    [message] = vstack.admin.pull(sub, 10)
    assert VerifyRequest.from_json(message["data_bytes"]) == VerifyRequest(run_id="r12345abc", destination="sftp:local")
    as_json = runner.invoke(app, ["verify", "r12345abd", "--publish", "--json"])
    assert as_json.exit_code == 0, as_json.output
    printed = json.loads(as_json.stdout)
    assert printed["topic"] == VERIFY_REQUESTS and printed["request"]["run_id"] == "r12345abd"
    [again] = vstack.admin.pull(sub, 10)
    assert again["messageId"] == printed["message_id"]
    assert VerifyRequest.from_json(again["data_bytes"]).run_id == "r12345abd"


def test_status_lists_runs_with_their_destinations(vstack: VerifyStack) -> None:
    run = delivered_run(vstack)
    vstack.request({"run_id": "rnosuchrun0002"})  # a rejected request is in the history too
    out = runner.invoke(app, ["status", "--since", "1d", "--json"])
    assert out.exit_code == 0, out.output
    listed = json.loads(out.output)
    rows = {row["run_id"]: row for row in listed}
    row = rows[run.run_id]
    assert row["source"] == "sales.orders" and row["destinations"] == {"memory": "in_sync"}
    assert row["files"] == 2 and row["bytes"] == sum(map(len, FILES.values())) and row["last_failure"] is None
    assert row["date"] == "2025-01-08" and row["duration_s"] is not None and row["updated"]
    rejected = [r for r in listed if r["run_id"] == "-" and "rnosuchrun0002" in (r["last_failure"] or "")]
    assert len(rejected) == 1 and "rejected" in rejected[0]["last_failure"]  # the rejected request: a row of its own
    table = runner.invoke(app, ["status", "--since", "1d", "--dataset", "sales"])
    assert table.exit_code == 0 and "\x1b" not in table.stdout
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "RUN",
        "SOURCE",
        "DATE",
        "DESTINATIONS",
        "FILES",
        "BYTES",
        "DURATION",
        "LAST",
        "FAILURE",
    ]
    cells = next(line.split() for line in lines if line.startswith(run.run_id + " "))
    assert cells[:6] == [run.run_id, "sales.orders", "2025-01-08", "memory=in_sync", "2", f"{SIZE:,}"]
    assert cells[6].endswith("s") and cells[7] == "-"  # the duration; no failure
    assert not any(line.startswith("- ") for line in lines)  # --dataset sales leaves out the rejected request
    assert runner.invoke(app, ["status", "--since", "soon"]).exit_code == 2


def test_status_of_one_run_and_of_failing_runs(vstack: VerifyStack) -> None:
    """--run reads only that run's results; --failing only runs whose latest result is a failure;
    an empty answer says what was asked, naming a dataset the config does not have."""
    run = delivered_run(vstack)
    out = runner.invoke(app, ["status", "--run-id", run.run_id, "--json"])
    assert out.exit_code == 0, out.output
    assert [(r["run_id"], r["destinations"]) for r in json.loads(out.stdout)] == [(run.run_id, {"memory": "in_sync"})]
    failing = json.loads(runner.invoke(app, ["status", "--since", "1d", "--failing", "--json"]).stdout)
    assert run.run_id not in [r["run_id"] for r in failing]
    vstack.request({"run_id": "rnosuchrun0003"})  # rejected: a failing row of its own
    failing = json.loads(runner.invoke(app, ["status", "--since", "1d", "--failing", "--json"]).stdout)
    assert any("rnosuchrun0003" in (r["last_failure"] or "") for r in failing), failing
    empty = runner.invoke(app, ["status", "--since", "1d", "--failing", "--dataset", "hr", "--run-id", run.run_id])
    assert empty.exit_code == 0, empty.output
    assert empty.stdout.startswith(
        f"no failing verify results of run {run.run_id}, dataset 'hr' (not a configured dataset; configured: sales)"
    ), empty.stdout


def test_demo_summary_waits_for_every_delivery(vstack: VerifyStack) -> None:
    run = delivered_run(vstack)
    state = wait_for_results(config(), [run.run_id], timeout_s=30, poll_s=0.2)
    assert state.all_in_sync
    lines = summary_lines(state)
    assert lines[0] == f"run {run.run_id}  sales.orders  2025-01-08"
    assert "in_sync" in lines[1] and "check: sha1" in lines[1] and "files 2/2" in lines[1]
    assert lines[-1] == "all deliveries in sync with sha1: 1 of 1"


def test_demo_summary_is_not_green_for_a_mismatch(vstack_factory) -> None:
    vstack = vstack_factory(self_heal=False)
    run = vstack.new_run(FILES)
    receipts = [vstack.deliver(run, n, data=b"PAR1" + b"q" * 300 if n == SECOND else None) for n in sorted(FILES)]
    for receipt in receipts:
        vstack.receipt(receipt)
    state = wait_for_results(config(), [run.run_id], timeout_s=30, poll_s=0.2)
    assert state.done and not state.all_in_sync
    assert summary_lines(state)[-1] == "NOT all deliveries in sync with sha1: 0 of 1"


def test_dlq_list_and_replay_a_pubsub_message(vstack: VerifyStack) -> None:
    dlq = "verify-verify-requests-dlq"
    body = json.dumps({"run_id": "r" + uuid.uuid4().hex[:12]}).encode()
    vstack.admin.publish(dlq, body, origin="test", CloudPubSubDeadLetterSourceDeliveryCount="5")
    listed = runner.invoke(app, ["dlq", "list", "--subscription", "verify-verify-requests", "--json"])
    assert listed.exit_code == 0, listed.output
    items = [i for i in json.loads(listed.output) if i["data"] == body.decode()]
    assert len(items) == 1 and items[0]["attributes"]["origin"] == "test"
    assert items[0]["subscription"] == "verify-verify-requests" and items[0]["message_id"]
    table = runner.invoke(app, ["dlq", "list", "--subscription", "verify-verify-requests"])
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["SUBSCRIPTION", "MESSAGE", "ID", "PUBLISHED", "ATTEMPTS", "DATA"]
    row = next(line.split() for line in lines if items[0]["message_id"] in line)
    assert row[:2] == ["verify-verify-requests", items[0]["message_id"]] and row[3] == "5"
    assert row[4:] == body.decode().split()

    sub = f"vreq-{uuid.uuid4().hex[:10]}"
    vstack.admin.create_subscription(sub, VERIFY_REQUESTS)
    replayed = runner.invoke(app, ["dlq", "replay", "--subscription", "verify-verify-requests"])
    assert replayed.exit_code == 0, replayed.output
    [message] = [m for m in vstack.admin.pull(sub, 10) if m["data_bytes"] == body]
    assert message["attributes"] == {"origin": "test"}  # dead-letter bookkeeping stripped
    again = runner.invoke(app, ["dlq", "list", "--subscription", "verify-verify-requests", "--json"])
    assert [i for i in json.loads(again.output) if i["data"] == body.decode()] == []


def test_dlq_replay_of_a_gcs_event_rewrites_the_object(vstack: VerifyStack) -> None:
    run = vstack.new_run(FILES)
    name = run.folder.prefix + SECOND
    before = gcs.stat(vstack.bucket, name)
    notification = json.dumps({"bucket": vstack.bucket, "name": name, "generation": str(before.generation)}).encode()
    vstack.admin.publish("transfer-sftp-gcs-finalized-dlq", notification, eventType="OBJECT_FINALIZE")
    replayed = runner.invoke(app, ["dlq", "replay", "-s", "transfer-sftp-gcs-finalized", "--json"])
    assert replayed.exit_code == 0, replayed.output
    report = json.loads(replayed.stdout)
    assert report["replayed"] == 1 and report["kept"] == 0
    [outcome] = report["messages"]
    assert outcome["subscription"] == "transfer-sftp-gcs-finalized" and outcome["replayed"] is True
    assert name in outcome["done"]
    after = gcs.stat(vstack.bucket, name)
    assert after.generation > before.generation and after.metadata.get("offsite-replay-of")
    assert gcs.read_bytes(vstack.bucket, name) == FILES[SECOND]


def test_dlq_replay_acks_each_message_at_once_and_keeps_the_one_that_fails(vstack: VerifyStack) -> None:
    """A publish error that is not an OffsiteError (here the server's InvalidArgument: once its
    dead-letter attributes are stripped, the empty message has nothing to publish) keeps that
    message queued; the others are replayed and acknowledged, so the next replay does not send
    them twice, and the failed one is handed back at once (not leased for the ack deadline)."""
    dlq, subscription = "verify-verify-requests-dlq", "verify-verify-requests"
    bodies = [json.dumps({"run_id": "r" + uuid.uuid4().hex[:12]}).encode() for _ in range(2)]
    vstack.admin.publish(dlq, bodies[0], CloudPubSubDeadLetterSourceDeliveryCount="5")
    vstack.admin.publish(dlq, b"", CloudPubSubDeadLetterSourceDeliveryCount="5")
    vstack.admin.publish(dlq, bodies[1], CloudPubSubDeadLetterSourceDeliveryCount="5")
    watch = f"vreq-{uuid.uuid4().hex[:10]}"
    vstack.admin.create_subscription(watch, VERIFY_REQUESTS)

    replayed = runner.invoke(app, ["dlq", "replay", "-s", subscription, "--json"])
    assert replayed.exit_code == 1 and isinstance(replayed.exception, SystemExit), replayed.exception  # no traceback
    report = json.loads(replayed.stdout)
    assert (report["replayed"], report["kept"]) == (2, 1), report
    [failed] = [m for m in report["messages"] if not m["replayed"]]
    assert failed["error"].startswith("InvalidArgument")
    left = json.loads(runner.invoke(app, ["dlq", "list", "-s", subscription, "--json"]).stdout)
    assert [(m["message_id"], m["data"]) for m in left] == [(failed["message_id"], "")]

    again = runner.invoke(app, ["dlq", "replay", "-s", subscription, "--json"])
    assert json.loads(again.stdout)["replayed"] == 0
    assert sorted(m["data_bytes"] for m in vstack.admin.pull(watch, 10)) == sorted(bodies)  # each once
    vstack.admin.pull("verify-verify-requests-dlq-sub", 10)  # drop the empty one


def test_dlq_limit_must_be_positive(vstack: VerifyStack) -> None:
    for command in ("list", "replay"):
        refused = runner.invoke(app, ["dlq", command, "-s", "verify-verify-requests", "--limit", "0"])
        assert refused.exit_code == 2 and "--limit" in refused.output


def test_status_keeps_restore_drills_and_skips_out_of_destinations_and_failures(vstack: VerifyStack) -> None:
    """A restore drill's result names the run and the destination it restored from: it proves the
    copy restores, it is not the destination's verify status; ``skipped`` is not a failure."""
    run = delivered_run(vstack)
    drill = {"run_id": run.run_id, "source": run.folder.source, "destination": "memory", "stage": "restore_drill"}
    report(VerifyResult(status="restore_verified", reason="restored 2 rows; equal", **drill), config=config())
    skipped_run = "r" + uuid.uuid4().hex[:12]
    report(
        VerifyResult(status="skipped", run_id=skipped_run, stage="collect_list", reason="a holiday"), config=config()
    )

    rows = {row["run_id"]: row for row in json.loads(runner.invoke(app, ["status", "--since", "1d", "--json"]).stdout)}
    row = rows[run.run_id]
    assert row["destinations"] == {"memory": "in_sync"} and row["last_failure"] is None
    assert (row["restore_drill"]["status"], row["restore_drill"]["destination"]) == ("restore_verified", "memory")
    assert rows[skipped_run]["last_failure"] is None
    table = runner.invoke(app, ["status", "--since", "1d"]).stdout.splitlines()
    assert next(line.split() for line in table if line.startswith(run.run_id + " "))[3] == "memory=in_sync"

    report(VerifyResult(status="restore_failed", reason="row count 1, expected 2", **drill), config=config())
    row = {r["run_id"]: r for r in json.loads(runner.invoke(app, ["status", "--since", "1d", "--json"]).stdout)}[
        run.run_id
    ]
    assert row["destinations"] == {"memory": "in_sync"} and row["restore_drill"]["status"] == "restore_failed"
    assert row["last_failure"] == "restore drill from memory: restore_failed: row count 1, expected 2"


def test_dlq_replay_of_a_dateless_request_keeps_the_day_it_was_sent_for(vstack: VerifyStack, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A scheduled request has no date: its day comes from when it was published. Replayed the
    next morning it carries its first publish time (Pub/Sub's CloudPubSubDeadLetterSourceTopicPublishTime),
    and fan-out dates the run by it (before: by the replay's, so yesterday's run was never made
    and today's made twice)."""
    from shared.events import FIRST_PUBLISHED_ATTR, PubSubMessage
    from shared.messages import ExportRequest
    from shared.stages.fan_out import plan
    from shared.topology import EXPORT_REQUESTS
    from tests.unit.config_files import load

    body = json.dumps({"export": f"daily_{uuid.uuid4().hex[:6]}"}).encode()
    vstack.admin.publish(
        "fan-out-export-requests-dlq",
        body,
        CloudPubSubDeadLetterSourceDeliveryCount="5",
        CloudPubSubDeadLetterSourceTopicPublishTime="2026-01-08T06:00:00.123Z",
    )
    sub = f"ereq-{uuid.uuid4().hex[:10]}"
    vstack.admin.create_subscription(sub, EXPORT_REQUESTS)
    replayed = runner.invoke(app, ["dlq", "replay", "--subscription", "fan-out-export-requests"])
    assert replayed.exit_code == 0, replayed.output
    [message] = [m for m in vstack.admin.pull(sub, 10) if m["data_bytes"] == body]
    assert message["attributes"] == {FIRST_PUBLISHED_ATTR: "2026-01-08T06:00:00.123Z"}

    config = load(tmp_path, REPLAY_CONFIG)
    request = PubSubMessage(body, "m2", "2026-01-09T09:15:00Z", EXPORT_REQUESTS, message["attributes"])
    renamed = ExportRequest.from_json(b'{"export": "daily"}')
    [task] = plan(renamed, config, None, run_id="r2", publish_time=request.first_published)
    assert task.date.isoformat() == "2026-01-07"  # `date: yesterday` of the day it was sent


REPLAY_CONFIG = """
project: p1
bucket: my-bucket
destinations:
  sftp:
    acme: {host: h, username: u, password: x, known_hosts: "h ssh-ed25519 AAAA"}
exports:
  - name: daily
    sql: "SELECT * FROM `p1.sales.orders` WHERE d = '{date}'"
    schedule: "0 6 * * *"
    date: yesterday
"""
