"""``offsite mirror check|reconcile`` against the bare stack's GCS, Pub/Sub, Box and SFTP."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

from typer.testing import CliRunner

from offsite.cli import app
from shared.destinations import factory
from shared.mirror.request import MirrorRequest
from shared.stages.verify import verify
from shared.topology import MIRROR_RECONCILES
from tests.mirror.conftest import MirrorStack

runner = CliRunner()


def test_check_exits_0_in_sync_and_1_naming_what_differs(mirror_factory: Callable[..., MirrorStack]) -> None:
    m = mirror_factory()
    m.finalized(m.put("ä b/c.txt", b"content"))
    ok = runner.invoke(app, ["mirror", "check", m.bucket])
    assert ok.exit_code == 0, ok.output
    assert ok.output.count("IN_SYNC") == 2

    m.sftp_path("ä b/c.txt").unlink()
    drift = runner.invoke(app, ["mirror", "check", m.bucket, "--json"])
    assert drift.exit_code == 1, drift.output
    results = {r["destination"]: r for r in json.loads(drift.output)}
    assert results["sftp:local"]["missing"] == ["ä b/c.txt"] and results["sftp:local"]["status"] == "mismatch"
    assert results["box"]["status"] == "in_sync"
    assert m.results() == []  # a check publishes nothing


def test_check_of_a_bucket_that_is_not_mirrored_exits_2(mirror_factory: Callable[..., MirrorStack]) -> None:
    mirror_factory()
    result = runner.invoke(app, ["mirror", "check", "no-such-mirror"])
    assert result.exit_code == 2
    assert "'no-such-mirror' is not a mirrored bucket" in result.output


def test_reconcile_publishes_the_scheduled_request(mirror_factory: Callable[..., MirrorStack]) -> None:
    m = mirror_factory()
    sub = f"mreq-{uuid.uuid4().hex[:10]}"
    m.admin.create_topic(MIRROR_RECONCILES)
    m.admin.create_subscription(sub, MIRROR_RECONCILES)
    result = runner.invoke(app, ["mirror", "reconcile", m.bucket, "--check-only", "-d", "box"])
    assert result.exit_code == 0, result.output
    (message,) = m.admin.pull(sub, 10)
    published = MirrorRequest.from_json(message["data_bytes"])
    assert published.request_id is not None and published.request_id.startswith("cli-")  # its results repeat it
    assert published == MirrorRequest.model_validate(
        {"bucket": m.bucket, "destination": "box", "fix": False, "request_id": published.request_id}
    )
    refused = runner.invoke(app, ["mirror", "reconcile", "no-such-mirror"])
    assert refused.exit_code == 2 and "'no-such-mirror' is not a mirrored bucket" in refused.output
    # a destination that is not the bucket's own is refused here, not later by verify
    refused = runner.invoke(app, ["mirror", "reconcile", m.bucket, "-d", "sftp:nowhere"])
    assert refused.exit_code == 2 and "'sftp:nowhere' is not a destination of bucket" in refused.output
    assert m.admin.pull(sub, 10) == []  # neither refusal published anything


def test_check_agrees_with_the_reconcile_on_copies_of_excluded_objects(
    mirror_factory: Callable[..., MirrorStack],
) -> None:
    """The copy of an object ``exclude`` leaves out stays (delivered before the exclude was added):
    the reconcile calls that in sync, and so must the check."""
    m = mirror_factory(delete="mirror", destinations=["box"], exclude=["models/tmp/*"])
    m.finalized(m.put("models/a.pt", b"model"))
    m.put("models/tmp/scratch.pt", b"scratch")
    with factory.opened("box", m.config) as box:
        box.put(f"{m.folder}/models/tmp/scratch.pt", io.BytesIO(b"scratch"), 7)
    (reconciled,) = m.reconcile(fix=False)
    assert reconciled.status == "in_sync", reconciled.reason
    checked = runner.invoke(app, ["mirror", "check", m.bucket])
    assert checked.exit_code == 0, checked.output


def test_status_shows_each_destinations_last_reconcile_and_the_next_run(
    mirror_factory: Callable[..., MirrorStack],
) -> None:
    m = mirror_factory(schedule="0 3 * * *")
    before = runner.invoke(app, ["mirror", "status", m.bucket, "--json"])
    assert before.exit_code == 0, before.output
    ((row),) = json.loads(before.output)
    assert row["destinations"] == {"box": None, "sftp:local": None}  # never reconciled
    assert row["next_run"].endswith("T03:00:00+00:00") and row["delete"] == "keep"

    m.finalized(m.put("s/one.txt", b"one"))
    m.sftp_path("s/one.txt").unlink()
    m.reconcile(fix=False)  # verify's route, in-process: the results go into the run history
    after = runner.invoke(app, ["mirror", "status", m.bucket, "--json"])
    ((row),) = json.loads(after.output)
    box, sftp = row["destinations"]["box"], row["destinations"]["sftp:local"]
    assert (box["status"], sftp["status"]) == ("in_sync", "mismatch"), row
    assert "1 missing (s/one.txt)" in sftp["reason"] and sftp["finished_at"]
    assert sftp["request_id"] is None  # pushed as the schedule's request: nobody's id

    table = runner.invoke(app, ["mirror", "status", m.bucket])
    assert table.exit_code == 0 and "mismatch" in table.output and "sftp:local" in table.output, table.output
    refused = runner.invoke(app, ["mirror", "status", "no-such-mirror"])
    assert refused.exit_code == 2 and "bucket: 'no-such-mirror' is not a mirrored bucket" in refused.output


def _reconcile_cli(*args: str) -> subprocess.Popen[str]:
    """``offsite mirror reconcile`` in a process of its own (it waits while this test pushes)."""
    command = [sys.executable, "-m", "offsite.cli", "mirror", "reconcile", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())


def _published_for(m: MirrorStack, within_s: float = 30.0, destination: str | None = None) -> MirrorRequest:
    """The request (for the whole bucket, or ``destination``) the CLI published on
    mirror-reconciles for ``m``'s bucket."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        for message in m.admin.pull(m.reconciles_sub, 10):
            request = MirrorRequest.from_json(message["data_bytes"])
            if request.bucket == m.bucket and request.destination == destination:
                return request
        time.sleep(0.1)
    raise AssertionError("the CLI published no reconcile request")


def test_reconcile_wait_follows_its_own_reconcile_to_each_destinations_result(
    mirror_factory: Callable[..., MirrorStack],
) -> None:
    """--wait follows the reconcile it published, pushed to verify as Pub/Sub would (in-process
    here), to each destination's result; the results of a reconcile reported just before (the
    schedule's) are in the history it reads, and are not taken for this one's."""
    m = mirror_factory()
    m.finalized(m.put("w/one.txt", b"one"))
    m.sftp_path("w/one.txt").unlink()
    assert len(m.reconcile(fix=False)) == 2  # the schedule's, a moment before: no request id

    cli = _reconcile_cli(m.bucket, "--check-only", "--wait", "--timeout", "90", "--json")
    asked = _published_for(m)
    time.sleep(2)  # the CLI reads the history meanwhile: the schedule's results must not end its wait
    assert cli.poll() is None, cli.communicate()
    verify(m.pubsub_event(MIRROR_RECONCILES, asked.to_json()), m.config)  # handed on per destination
    for handed_on in m.handed_on(2):
        verify(m.pubsub_event(MIRROR_RECONCILES, handed_on.to_json()), m.config)
    out, err = cli.communicate(timeout=90)
    assert cli.returncode == 1, (out, err)  # sftp:local differs
    body = json.loads(out)
    assert body["complete"] is True and body["in_sync"] is False and body["request"]["request_id"] == asked.request_id
    results = body["results"]
    assert {d: (r["status"], r["request_id"]) for d, r in results.items()} == {
        "box": ("in_sync", asked.request_id),
        "sftp:local": ("mismatch", asked.request_id),
    }
    assert results["sftp:local"]["missing"] == ["w/one.txt"]

    # fix it: the fixing reconcile reports what it found, the copy is made, and the check the
    # CLI asks for then (same request id) confirms it
    fixing = _reconcile_cli(m.bucket, "-d", "sftp:local", "--wait", "--timeout", "90")
    out, err = _pumped(m, fixing)
    assert fixing.returncode == 0, (out, err)
    assert "sftp:local: 1 missing (w/one.txt); 1 re-delivery(ies) requested; then checked again" in out
    assert "IN_SYNC" in out and "MISMATCH" not in out, out
    assert m.sftp_path("w/one.txt").read_bytes() == b"one"


def test_reconcile_wait_on_a_fix_not_made_in_time_exits_1_with_what_was_found(
    mirror_factory: Callable[..., MirrorStack],
) -> None:
    """The re-delivery is never made here (its continuation is not pushed): the confirming
    check still finds the copy missing, and the timeout ends the wait."""
    m = mirror_factory()
    m.finalized(m.put("n/one.txt", b"one"))
    m.sftp_path("n/one.txt").unlink()
    fixing = _reconcile_cli(m.bucket, "-d", "sftp:local", "--wait", "--timeout", "6", "--json")
    out, err = _pumped(m, fixing, continuations=False)
    assert fixing.returncode == 1, (out, err)
    body = json.loads(out)
    assert body["complete"] is False and body["in_sync"] is False
    fixed, now = body["fixed"]["sftp:local"], body["results"]["sftp:local"]
    assert (fixed["status"], fixed["heal_attempts"], fixed["missing"]) == ("mismatch", 1, ["n/one.txt"])
    # the newest result is the confirming check's (fix false: it asked for nothing more)
    assert (now["status"], now["heal_attempts"], now["missing"]) == ("mismatch", 0, ["n/one.txt"])
    assert now["message_id"] != fixed["message_id"] and now["request_id"] == fixed["request_id"]


def _pumped(m: MirrorStack, cli: subprocess.Popen[str], *, continuations: bool = True) -> tuple[str, str]:
    """Push what the CLI publishes on mirror-reconciles for ``m``'s bucket (and, with
    ``continuations``, the re-deliveries) to verify and the delivery functions, as Pub/Sub would,
    until the CLI exits; its output."""
    deadline = time.monotonic() + 120
    while cli.poll() is None:
        assert time.monotonic() < deadline, "the CLI did not finish"
        for message in m.admin.pull(m.reconciles_sub, 10):
            request = MirrorRequest.from_json(message["data_bytes"])
            if request.bucket == m.bucket:
                event = m.pubsub_event(MIRROR_RECONCILES, message["data_bytes"], message_id=message["messageId"])
                verify(event, m.config)
        if continuations:
            m.continuations()
        time.sleep(0.2)
    return cli.communicate(timeout=10)


def test_reconcile_wait_with_no_result_in_time_exits_1_saying_where_to_look(
    mirror_factory: Callable[..., MirrorStack],
) -> None:
    m = mirror_factory()
    late = runner.invoke(app, ["mirror", "reconcile", m.bucket, "-d", "box", "--wait", "--timeout", "1"])
    assert late.exit_code == 1, late.output
    assert "error: no result of this reconcile from box after 1s" in late.output
    assert f"offsite mirror status {m.bucket}" in late.output
    # published before it waited (the request stays for verify; nobody pushes it here)
    published = [MirrorRequest.from_json(msg["data_bytes"]) for msg in m.admin.pull(m.reconciles_sub, 10)]
    mine = [r for r in published if r.bucket == m.bucket]
    assert [(str(r.destination), (r.request_id or "")[:4]) for r in mine] == [("box", "cli-")]
