"""POST /collect/<job>, POST /restore-drill/<dataset> and GET /restore-drill/<dataset>/<drill_id>
through the running http_trigger and the stack's functions: a collect run and a restore drill
started over HTTP, checked against the config first, and followed as the CLI's --wait does."""

from __future__ import annotations

import datetime as dt
import os
import re
import time
import uuid
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from devstack.localconfig import COLLECT_JOB, COLLECT_OUTBOX
from shared.collect.runs import wait_for_run
from shared.config import Config, from_dict, read_file
from shared.gcp import clients
from shared.topology import COLLECT_REQUESTS, RESTORE_DRILLS
from tests.http.conftest import REFUSALS, Trigger, refuse_history

SCRATCH = "drill_scratch"  # the stack's restore_drill.to (devstack/localconfig.py)


def test_post_collect_with_wait_answers_the_runs_result(trigger: Trigger) -> None:
    """The stack's collect_list and collect_copy run the job (whatever its outbox holds now: the
    seeded files, or none once another test moved them) and the answer is the run's result: 200
    with ``success`` false for a failed listing, true for a run in_sync."""
    outbox = trigger.stack.sftp.directory / COLLECT_OUTBOX
    if outbox.exists():  # the partner's outbox gone: the listing fails
        outbox.rename(outbox.with_name("outbox-away"))
    try:
        failed = trigger.call("POST", f"/collect/{COLLECT_JOB}?wait=240", {"ignore_calendar": True})
    finally:
        away = outbox.with_name("outbox-away")
        if away.exists():
            away.rename(outbox)
    assert failed.status == 200 and failed.body["complete"] is True and failed.body["success"] is False, failed.body
    assert (failed.body["result"]["status"], failed.body["result"]["stage"]) == ("failed", "collect_list")
    assert "no such file" in failed.body["result"]["reason"]

    _make_outbox(trigger)
    run_id = "rhttpcollect" + uuid.uuid4().hex[:6]
    reply = trigger.call("POST", f"/collect/{COLLECT_JOB}?wait=240", {"ignore_calendar": True, "run_id": run_id})
    assert reply.status == 200, reply.body
    body = reply.body
    assert (body["collect"], body["run_id"], body["topic"]) == (COLLECT_JOB, run_id, COLLECT_REQUESTS)
    assert body["request"] == {"collect": COLLECT_JOB, "run_id": run_id, "ignore_calendar": True, **_version(body)}
    assert body["complete"] is True and body["success"] is True, body["result"]
    result = body["result"]
    assert (result["status"], result["stage"], result["run_id"]) == ("in_sync", "collect_copy", run_id)
    assert result["files_present"] == result["files_expected"]

    # GET /collect/<job>: the job's last run (its freshness record, written right after the result)
    deadline = time.monotonic() + 60
    while (status := trigger.call("GET", f"/collect/{COLLECT_JOB}")).body.get("last_run_id") != run_id:
        assert status.status == 200 and time.monotonic() < deadline, status.body
        time.sleep(0.5)
    assert (status.body["job"], status.body["last_status"], status.body["last_files"]) == (
        COLLECT_JOB,
        "in_sync",
        result["files_present"],
    )
    assert status.body["partner"] and status.body["next_run"] and status.body["checked_at"]
    every = trigger.call("GET", "/collect")
    assert every.status == 200 and [j["job"] for j in every.body["jobs"]] == [COLLECT_JOB]
    assert every.body["jobs"][0]["last_run_id"] == run_id


def _make_outbox(trigger: Trigger) -> None:
    """The partner's outbox, empty unless a test put files there (a missing one fails the listing)."""
    data = trigger.stack.sftp.directory
    for folder in ((data / COLLECT_OUTBOX).parent, data / COLLECT_OUTBOX):
        folder.mkdir(exist_ok=True)
        os.chown(folder, data.stat().st_uid, data.stat().st_gid)


def _version(body: dict[str, object]) -> dict[str, object]:
    request = body["request"]
    assert isinstance(request, dict)
    return {k: v for k, v in request.items() if k == "schema_version"}


def test_post_collect_without_wait_names_the_run_and_a_resent_post_is_the_same_run(trigger: Trigger) -> None:
    _make_outbox(trigger)
    key = {"Idempotency-Key": f"airflow-collect-{uuid.uuid4().hex}"}
    first = trigger.call("POST", f"/collect/{COLLECT_JOB}", headers=key)
    again = trigger.call("POST", f"/collect/{COLLECT_JOB}", b"{}", headers=key)
    assert first.status == again.status == 202, (first.body, again.body)
    assert re.fullmatch(r"k[0-9a-f]{12}", first.body["run_id"]) and again.body["run_id"] == first.body["run_id"]
    assert first.body["request"]["ignore_calendar"] is False and "complete" not in first.body
    other = trigger.call("POST", f"/collect/{COLLECT_JOB}", {"ignore_calendar": False})
    assert other.status == 202 and re.fullmatch(r"r[0-9a-f]{12}", other.body["run_id"])
    for run_id in (first.body["run_id"], other.body["run_id"]):  # nothing of this test runs on after it
        assert wait_for_run(trigger.config.state_bucket_name, COLLECT_JOB, run_id, timeout_s=240) is not None


def test_collect_requests_are_checked_against_the_config_before_anything_is_published(trigger: Trigger) -> None:
    unknown = trigger.call("POST", "/collect/nope")
    assert unknown.status == 404
    assert unknown.body["error"] == f"collect: no job 'nope' in the config (configured: {COLLECT_JOB})"
    other = trigger.call("POST", f"/collect/{COLLECT_JOB}", {"collect": "other"})
    assert other.status == 400
    assert other.body["error"] == f"collect request.collect: 'other' in the body is not '{COLLECT_JOB}' of the path"
    flag = trigger.call("POST", f"/collect/{COLLECT_JOB}", {"ignore_calendar": "yes"})
    assert flag.status == 400 and flag.body["error"].startswith("collect request.ignore_calendar: ")
    assert "'yes'" in flag.body["error"]
    not_object = trigger.call("POST", f"/collect/{COLLECT_JOB}", [1])
    assert not_object.status == 400 and "collect request" in not_object.body["error"]
    too_long = trigger.call("POST", f"/collect/{COLLECT_JOB}?wait=99999")
    assert too_long.status == 400 and too_long.body["error"].startswith("wait: '99999' must be between 0 and ")
    replaced = trigger.call("PUT", f"/collect/{COLLECT_JOB}")
    assert replaced.status == 405 and replaced.headers["Allow"] == "POST, GET"
    assert trigger.call("POST", "/collect").headers["Allow"] == "GET"
    missing = trigger.call("GET", "/collect/nope")
    assert missing.status == 404 and missing.body["error"].startswith("collect: no job 'nope' in the config")
    bad_name = trigger.call("POST", "/collect/no.dots")
    assert bad_name.status == 400 and bad_name.body["error"].startswith(
        "job: 'no.dots' in the path is not a valid name"
    )


def test_restore_drills_started_over_http_are_proven_and_read_back(trigger: Trigger) -> None:
    """An in_sync run first (a drill restores only verified runs), then two drills over HTTP, one
    answered at once and one waited for: the stack's restore_drill function restores each sample
    from sftp:local and proves it equal; GET reads either drill back."""
    clients.bigquery_client().create_dataset(f"{trigger.stack.project}.{SCRATCH}", exists_ok=True)
    synced = trigger.call("POST", "/sync/sales?wait=400", {"tables": "products"})
    assert synced.status == 200 and synced.body["complete"] is True and synced.body["errors"] == 0, synced.body

    started = trigger.call("POST", "/restore-drill/sales", {"dataset": "sales"})
    assert started.status == 202 and "proven" not in started.body, started.body
    assert started.body["drill_id"] == "m" + re.sub(r"[^A-Za-z0-9]", "", started.body["message_id"])
    assert started.body["status_url"] == f"/restore-drill/sales/{started.body['drill_id']}"

    reply = trigger.call("POST", "/restore-drill/sales?wait=480")
    assert reply.status == 200, reply.body
    body = reply.body
    assert body["dataset"] == "sales" and body["topic"] == RESTORE_DRILLS and body["ended"] is True
    assert body["drill_id"] != started.body["drill_id"]
    assert body["started"] is True and body["complete"] is True and body["error"] is None
    assert body["tables"] and all(t["status"] == "restore_verified" for t in body["tables"]), body["tables"]
    assert body["proven"] is True
    read = trigger.call("GET", body["status_url"])
    assert read.status == 200
    keys = ("drill_id", "proven", "complete", "ended", "tables")
    assert {k: read.body[k] for k in keys} == {k: body[k] for k in keys}

    deadline = time.monotonic() + 480  # the first drill ran beside the second: read it until it ended
    while not (first := trigger.call("GET", started.body["status_url"]).body)["ended"]:
        assert time.monotonic() < deadline, first
        time.sleep(1)
    assert first["proven"] is True and first["tables"], first
    # GET /restore-drill: the dataset's last proven restore is one of these drills' tables
    drills = trigger.call("GET", "/restore-drill")
    assert drills.status == 200 and drills.body["checked_at"]
    [sales] = [row for row in drills.body["datasets"] if row["dataset"] == "sales"]
    proven = {(t["table"], t["run_id"]) for t in body["tables"] + first["tables"]}
    assert (sales["last_proven"]["table"], sales["last_proven"]["run_id"]) in proven, sales
    assert sales["last_proven"]["destination"] == "sftp:local" and sales["age_s"] >= 0


def test_restore_drill_requests_are_checked_and_an_unknown_drill_reads_as_not_started(trigger: Trigger) -> None:
    unknown = trigger.call("POST", "/restore-drill/nope")
    assert unknown.status == 404 and unknown.body["error"] == "restore drill: no dataset 'nope' in the config"
    continuation = trigger.call("POST", "/restore-drill/sales", {"drill_id": "m1", "picks": []})
    assert continuation.status == 400
    assert continuation.body["error"] == (
        "restore drill request.drill_id: not accepted here (a drill starts from its dataset only)"
    )
    other = trigger.call("POST", "/restore-drill/sales", {"dataset": "hr"})
    assert other.status == 400 and "'hr' in the body is not 'sales' of the path" in other.body["error"]
    too_long = trigger.call("POST", "/restore-drill/sales?wait=-1")
    assert too_long.status == 400 and too_long.body["error"].startswith("wait: '-1' must be between 0 and ")

    never = trigger.call("GET", "/restore-drill/sales/m999999999999")
    assert never.status == 200
    assert (never.body["started"], never.body["ended"], never.body["tables"]) == (False, False, [])
    assert trigger.call("GET", "/restore-drill/nope/m1").status == 404
    assert trigger.call("GET", "/restore-drill/sales").status == 405


@pytest.mark.parametrize("refusal", REFUSALS)
def test_a_wait_whose_history_cannot_be_read_answers_202_with_the_run_started(
    trigger: Trigger, monkeypatch: pytest.MonkeyPatch, refusal: Any
) -> None:
    """Published, then the run history not readable (GCS down: polled on until the wait ran out;
    refused: the wait ends at once): a 202 naming the run, never a 5xx that would make the caller
    start a second one. At the Google client, since fake-gcs-server cannot answer 503 or 403. The
    job and the dataset are ones the stack's functions do not have (they reject the requests), so
    no result can come before the history is read, and nothing of this test runs on after it."""
    from shared.http_trigger import jobs
    from shared.http_trigger.messages import HttpRequest
    from shared.restore.drill_watch import wait_for_drill

    raw = read_file(trigger.stack.config_path)
    raw["datasets"].append({"name": "drill_only", "restore_drill": {"schedule": "0 6 * * *", "to": SCRATCH}})
    raw["collect"]["jobs"].append({**raw["collect"]["jobs"][0], "name": "tnotdeployed"})
    config = from_dict(Config, raw)
    sent = dt.datetime.now(dt.UTC)
    with monkeypatch.context() as patched:
        refused = refuse_history(patched, refusal)
        request = HttpRequest("POST", "/collect/tnotdeployed", {"wait": "1"})
        collect = jobs.start_collect(request, config, "tnotdeployed", lambda s: None)
        request = HttpRequest("POST", "/restore-drill/drill_only", {"wait": "1"})
        drill = jobs.start_drill(request, config, "drill_only", lambda s: None)
    assert refused, "the run history was never listed"
    assert collect.status == 202 and collect.body["complete"] is False and collect.body["run_id"], collect.body
    assert drill.status == 202 and drill.body["ended"] is False and drill.body["drill_id"], drill.body
    if isinstance(refusal(), gexc.Forbidden):
        assert collect.body["error"].startswith("the run was started; "), collect.body
        assert drill.body["error"].startswith("the drill was started; "), drill.body
    else:
        assert "error" not in collect.body and drill.body["error"].startswith("no result after 1s"), drill.body
    # readable again: the stack's function refused the drill (its config has no such dataset)
    ended = wait_for_drill(
        config, "drill_only", drill.body["drill_id"], message_id=drill.body["message_id"], since=sent, timeout_s=120
    )
    assert ended.refused is not None and "no dataset 'drill_only'" in ended.refused, ended
