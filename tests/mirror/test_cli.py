"""``offsite mirror check|reconcile`` against the bare stack's GCS, Pub/Sub, Box and SFTP."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable

from typer.testing import CliRunner

from offsite.cli import app
from shared.destinations import factory
from shared.mirror.request import MirrorRequest
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
    assert MirrorRequest.from_json(message["data_bytes"]) == MirrorRequest.model_validate(
        {"bucket": m.bucket, "destination": "box", "fix": False}
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

    table = runner.invoke(app, ["mirror", "status", m.bucket])
    assert table.exit_code == 0 and "mismatch" in table.output and "sftp:local" in table.output, table.output
    refused = runner.invoke(app, ["mirror", "status", "no-such-mirror"])
    assert refused.exit_code == 2 and "bucket: 'no-such-mirror' is not a mirrored bucket" in refused.output
