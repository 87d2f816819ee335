"""POST /mirror/<bucket> and GET /mirror[/<bucket>] through the running http_trigger and the
stack's functions: a mirrored bucket's reconcile started over HTTP, checked against the config
first, followed until each destination reported, and its outcome read back."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import uuid
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from devstack.localconfig import MIRRORED_BUCKET
from shared import runtime
from shared.config import Config, from_dict, read_file
from shared.destinations import factory
from shared.gcp import gcs
from shared.topology import MIRROR_RECONCILES
from tests.http.conftest import REFUSALS, Trigger, refuse_history
from tests.run_folders import eventually

DESTINATIONS = ["box", "sftp:local"]  # the stack's mirror of MIRRORED_BUCKET (devstack/localconfig.py)


def _copy(destination: str, path: str) -> Any:
    with factory.opened(destination, runtime.config()) as dest:
        return dest.stat(path)


def _delivered(name: str, data: bytes) -> str:
    """Write ``name`` into the mirrored bucket; its path at the destinations once both hold it."""
    gcs.write(MIRRORED_BUCKET, name, data)
    path = f"GCP/storage/{MIRRORED_BUCKET}/{name}"
    for destination in DESTINATIONS:
        eventually(lambda d=destination: _copy(d, path) is not None, f"{name} at {destination}", 120)
    return path


def test_post_mirror_with_wait_answers_each_destinations_reconcile(trigger: Trigger) -> None:
    """A copy removed at Box: a check-only reconcile answers Box's mismatch naming it (and the
    SFTP copy's outcome); a fixing one re-delivers it, and GET /mirror shows the last outcomes."""
    name = f"http-mirror-{uuid.uuid4().hex[:8]}.txt"
    data = f"mirrored over HTTP {name}\n".encode()
    path = _delivered(name, data)
    with factory.opened("box", runtime.config()) as box:
        box.delete(path)

    reply = trigger.call("POST", f"/mirror/{MIRRORED_BUCKET}?wait=240", {"fix": False})
    assert reply.status == 200, reply.body
    body = reply.body
    assert (body["bucket"], body["topic"], body["destinations"]) == (MIRRORED_BUCKET, MIRROR_RECONCILES, DESTINATIONS)
    assert body["request"]["fix"] is False and body["status_url"] == f"/mirror/{MIRRORED_BUCKET}"
    assert body["complete"] is True and sorted(body["results"]) == DESTINATIONS
    assert body["request_id"].startswith("http-") and body["request"]["request_id"] == body["request_id"]
    assert {r["request_id"] for r in body["results"].values()} == {body["request_id"]}  # this reconcile's own
    box = body["results"]["box"]
    assert (box["status"], box["stage"], box["run_id"]) == ("mismatch", "mirror:reconcile", f"mirror-{MIRRORED_BUCKET}")
    assert name in box["missing"], box
    assert body["in_sync"] is False
    assert name not in body["results"]["sftp:local"].get("missing", []), body["results"]["sftp:local"]
    assert _copy("box", path) is None  # check only: nothing re-delivered

    fixing = trigger.call("POST", f"/mirror/{MIRRORED_BUCKET}", {"destination": "box"})
    assert fixing.status == 202, fixing.body
    assert fixing.body["destinations"] == ["box"] and fixing.body["request"]["fix"] is True
    assert "complete" not in fixing.body
    eventually(lambda: _copy("box", path) is not None, "the copy re-delivered at box", 120)
    with factory.opened("box", runtime.config()) as dest:
        stream = dest.open(path)  # type: ignore[attr-defined]
        try:
            assert hashlib.sha1(stream.read()).hexdigest() == hashlib.sha1(data).hexdigest()
        finally:
            stream.close()

    # GET /mirror/<bucket>: the fixing reconcile's result is box's last (it reported the mismatch
    # it fixed: "1 re-delivery(ies) requested")
    deadline = time.monotonic() + 60
    while "re-delivery" not in str(((status := _status(trigger))["destinations"]["box"] or {}).get("reason")):
        assert time.monotonic() < deadline, status
        time.sleep(0.5)
    assert status["bucket"] == MIRRORED_BUCKET and status["delete"] == "mirror" and status["next_run"] is None
    assert status["destinations"]["box"]["status"] == "mismatch" and status["destinations"]["box"]["finished_at"]
    assert status["destinations"]["box"]["request_id"] == fixing.body["request_id"]  # who asked for it
    assert status["destinations"]["sftp:local"]["status"] in ("in_sync", "mismatch")
    every = trigger.call("GET", "/mirror?days=1")
    assert every.status == 200 and [b["bucket"] for b in every.body["buckets"]] == [MIRRORED_BUCKET]
    gcs.delete(MIRRORED_BUCKET, name)  # delete: mirror removes the copies again


def test_a_fixing_reconcile_with_wait_answers_once_a_check_confirmed_the_fix(trigger: Trigger) -> None:
    """A copy removed at SFTP: the fixing reconcile re-delivers it (the stack's transfer_sftp),
    the trigger then asks for a check with the same request id, and answers 200 in sync with
    what the fix found beside it."""
    name = f"http-fix-{uuid.uuid4().hex[:8]}.txt"
    data = f"fixed over HTTP {name}\n".encode()
    path = _delivered(name, data)
    with factory.opened("sftp:local", runtime.config()) as sftp:
        sftp.delete(path)

    reply = trigger.call("POST", f"/mirror/{MIRRORED_BUCKET}?wait=300", {"destination": "sftp:local"})
    assert reply.status == 200, reply.body
    body = reply.body
    assert (body["complete"], body["in_sync"], body["destinations"]) == (True, True, ["sftp:local"])
    fixed, now = body["fixed"]["sftp:local"], body["results"]["sftp:local"]
    assert (fixed["status"], fixed["heal_attempts"], fixed["missing"]) == ("mismatch", 1, [name])
    assert (now["status"], now["stage"]) == ("in_sync", "mirror:reconcile")
    assert fixed["request_id"] == now["request_id"] == body["request_id"] and now["message_id"] != fixed["message_id"]
    assert _copy("sftp:local", path) is not None  # made before the check said so
    gcs.delete(MIRRORED_BUCKET, name)  # delete: mirror removes the copies again


def _status(trigger: Trigger) -> dict[str, Any]:
    reply = trigger.call("GET", f"/mirror/{MIRRORED_BUCKET}")
    assert reply.status == 200, reply.body
    return reply.body


def test_mirror_requests_are_checked_before_anything_is_published(trigger: Trigger) -> None:
    cases = [
        (
            "POST",
            "/mirror/not-mirrored",
            None,
            404,
            f"bucket: 'not-mirrored' is not a mirrored bucket (buckets[] in the config: {MIRRORED_BUCKET})",
        ),
        ("GET", "/mirror/not-mirrored", None, 404, "bucket: 'not-mirrored' is not a mirrored bucket"),
        ("POST", "/mirror/Not_A_Bucket!", None, 400, "bucket: 'Not_A_Bucket!' in the path is not a GCS bucket name"),
        (
            "POST",
            f"/mirror/{MIRRORED_BUCKET}",
            {"destination": "sftp:elsewhere"},
            400,
            "mirror request.destination: 'sftp:elsewhere' is not a destination of bucket",
        ),
        (
            "POST",
            f"/mirror/{MIRRORED_BUCKET}",
            {"fix": "yes"},
            400,
            "mirror request.fix: expected true or false, got 'yes'",
        ),
        (
            "POST",
            f"/mirror/{MIRRORED_BUCKET}",
            {"bucket": "other"},
            400,
            "mirror request.bucket: 'other' in the body is not",
        ),
        ("POST", f"/mirror/{MIRRORED_BUCKET}", "[1]", 400, "mirror request"),
        (
            "POST",
            f"/mirror/{MIRRORED_BUCKET}",
            {"request_id": "two words"},
            400,
            "mirror request.request_id: 'two words' does not match",
        ),
        ("POST", f"/mirror/{MIRRORED_BUCKET}?wait=soon", None, 400, "wait: 'soon' is not a number of seconds"),
        ("GET", "/mirror?days=0", None, 400, "days: '0' must be a whole number of days between 1 and 90"),
        ("DELETE", "/mirror", None, 405, "DELETE is not allowed on /mirror"),
    ]
    for method, path, body, status, text in cases:
        reply = trigger.call(method, path, body)
        assert (reply.status, text in reply.body.get("error", "")) == (status, True), (path, body, reply.body)


@pytest.mark.parametrize("refusal", REFUSALS)
def test_a_wait_whose_history_cannot_be_read_answers_202_with_the_reconcile_started(
    trigger: Trigger, monkeypatch: pytest.MonkeyPatch, refusal: Any
) -> None:
    """Published, then the history not readable (GCS down: polled on until the wait ran out;
    refused: the wait ends at once): a 202 naming the reconcile, never a 5xx that would make the
    caller start a second one. At the Google client, since fake-gcs-server cannot answer 503 or
    403. The bucket is one the stack's functions do not mirror (verify rejects the request), so no
    reconcile of this test runs on into the next one."""
    from shared.http_trigger import mirror
    from shared.http_trigger.messages import HttpRequest

    raw = read_file(trigger.stack.config_path)
    raw["buckets"].append({"name": "offsite-http-not-deployed", "destinations": ["box"]})
    config = from_dict(Config, raw)
    with monkeypatch.context() as patched:
        refused = refuse_history(patched, refusal)
        request = HttpRequest("POST", "/mirror/offsite-http-not-deployed", {"wait": "1"})
        response = mirror.start_reconcile(request, config, "offsite-http-not-deployed", lambda s: None)
    assert refused, "the history was never listed"
    body = response.body
    assert response.status == 202 and body["complete"] is False and body["message_id"], body
    assert body["destinations"] == ["box"] and body["topic"] == MIRROR_RECONCILES
    if isinstance(refusal(), gexc.Forbidden):
        assert body["error"].startswith("the reconcile was started; "), body
        assert len(refused) == 1  # refused: not asked again
    else:
        assert "error" not in body and body["results"] == {}, body


def test_a_reconciles_outcome_is_its_newest_result_of_the_reconcile_or_verify_stage(trigger: Trigger) -> None:
    """What ?wait and GET /mirror read from the run history (the stack's GCS): per destination,
    the newest result of run mirror-<bucket> from the reconcile (or from verify's runner, for a
    reconcile that failed before it compared); a re-delivery's failure is not the reconcile's;
    ?wait reads only the results of its own request."""
    from shared.messages import VerifyResult
    from shared.mirror.status import latest_reconciles
    from shared.reporting.history import record

    bucket = f"offsite-history-{uuid.uuid4().hex[:8]}"  # no function reconciles it: only these results
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=10)  # every result in the past
    run_id = f"mirror-{bucket}"

    def reported(destination: str, status: str, stage: str, at_s: float, request_id: str | None = None) -> None:
        result = VerifyResult(
            status=status, destination=destination, run_id=run_id, stage=stage, reason=stage, request_id=request_id
        )
        record(trigger.config.state_bucket_name, result, since + dt.timedelta(seconds=at_s))

    reported("box", "mismatch", "mirror:reconcile", 1, "http-mine")
    reported("box", "failed", "verify", 2)  # the next (scheduled) reconcile could not list the bucket
    reported("box", "failed", "upload_box", 3)  # a re-delivery's failure
    reported("sftp:local", "in_sync", "mirror:reconcile", 1)
    found = latest_reconciles(trigger.config, bucket, since)
    assert {d: (r.status, r.stage) for d, r in found.items()} == {
        "box": ("failed", "verify"),
        "sftp:local": ("in_sync", "mirror:reconcile"),
    }
    assert latest_reconciles(trigger.config, bucket, since + dt.timedelta(seconds=1.5)) == {"box": found["box"]}
    # a caller waiting for its own reconcile (POST /mirror?wait) reads only the results answering it
    mine = latest_reconciles(trigger.config, bucket, since, request_id="http-mine")
    assert {d: (r.status, r.request_id) for d, r in mine.items()} == {"box": ("mismatch", "http-mine")}
