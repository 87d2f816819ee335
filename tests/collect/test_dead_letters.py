"""A dead-lettered collect message is its run's failure (shared/stages/dead_letters.py): a request
names its run and job, so `offsite collect run --wait` ends; a file's copy gets the outcome
`failed`, so the run completes and reports instead of waiting for that file forever. Before,
both were reported as a failure of no run and the wait ran out."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest

from shared.collect import runs
from shared.collect.copy import copy_file
from shared.collect.messages import CollectRequest
from shared.config import Config
from shared.errors import PermanentError
from shared.ids import Stage, Status
from shared.stages.collect import collect_list
from shared.stages.dead_letters import on_dead_letter
from shared.topology import COLLECT_REQUESTS
from tests import cloudevents
from tests.collect.conftest import Collect


def _dead_letter(collect: Collect, subscription: str, data: bytes) -> dict[str, object]:
    """What the report subscription of ``subscription``'s dead-letter topic pushes to verify."""
    attributes = {
        "CloudPubSubDeadLetterSourceSubscription": f"projects/{collect.stack.project}/subscriptions/{subscription}",
        "CloudPubSubDeadLetterSourceDeliveryCount": "5",
    }
    return cloudevents.pubsub_event(collect.stack.project, f"{subscription}-dlq", data, attributes, subscriber="verify")


def test_a_dead_lettered_file_copy_fails_its_run_which_then_reports(collect: Collect) -> None:
    config: Config = collect.config()
    collect.write("a.csv", b"a" * 100)
    collect.write("b.csv", b"b" * 200)
    run_id = f"r{uuid.uuid4().hex[:12]}"
    collect.list(config, run_id=run_id)
    files = {f.name: f for f in collect.published_files()}
    assert copy_file(config, files["a.csv"]) == "collected"
    assert runs.run_result(config.state_bucket_name, collect.name, run_id) is None  # b.csv still out

    dead = _dead_letter(collect, "collect-copy-collect-files", files["b.csv"].to_json())
    on_dead_letter(dead, config)
    on_dead_letter(dead, config)  # Pub/Sub may push a dead letter twice: nothing changes

    result = runs.run_result(config.state_bucket_name, collect.name, run_id)
    assert result is not None and result.status == Status.FAILED
    assert (result.files_expected, result.files_present, result.missing) == (2, 1, ["b.csv"])
    assert "b.csv: dead-lettered after 5 delivery attempts on collect-copy-collect-files" in (result.reason or "")
    reported = [r for r in collect.results() if r.run_id == run_id]
    assert sorted((r.stage, r.status) for r in reported) == [
        (Stage.COLLECT_COPY, Status.FAILED),  # the dead letter's own report
        (Stage.COLLECT_COPY, Status.FAILED),  # the run's result
    ]
    assert (runs.freshness(config.state_bucket_name, collect.name) or {})["last_run_id"] == run_id
    # The file is not done: the next run collects it.
    assert collect.run(config) == ["collected"]
    assert {p.rsplit("/", 1)[-1] for p in collect.memory_files()} == {"a.csv", "b.csv"}


def test_a_dead_lettered_file_that_had_its_outcome_keeps_it(collect: Collect) -> None:
    config: Config = collect.config()
    collect.write("a.csv", b"a" * 100)
    run_id = f"r{uuid.uuid4().hex[:12]}"
    collect.list(config, run_id=run_id)
    [file] = collect.published_files()
    assert copy_file(config, file) == "collected"  # then its acknowledgement was lost, five times
    on_dead_letter(_dead_letter(collect, "collect-copy-collect-files", file.to_json()), config)
    result = runs.run_result(config.state_bucket_name, collect.name, run_id)
    assert result is not None and result.status == Status.IN_SYNC


def test_a_dead_lettered_collect_request_is_its_run_s_failure_and_ends_a_wait(collect: Collect) -> None:
    config: Config = collect.config()
    run_id = f"r{uuid.uuid4().hex[:12]}"
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    request = CollectRequest(collect=collect.name, run_id=run_id).to_json()
    on_dead_letter(_dead_letter(collect, "collect-list-collect-requests", request), config)
    [reported] = [r for r in collect.results() if r.run_id == run_id]
    assert (reported.stage, reported.status) == (Stage.COLLECT_LIST, Status.FAILED)
    assert reported.source is not None and reported.source.collect == collect.name
    waited = runs.wait_for_run(config.state_bucket_name, collect.name, run_id, timeout_s=10, since=since)
    assert waited is not None and waited.status == Status.FAILED and "dead-lettered" in (waited.reason or "")
    fresh = runs.freshness(config.state_bucket_name, collect.name) or {}
    assert (fresh["last_run_id"], fresh["last_status"]) == (run_id, "failed") and "last_collected_at" not in fresh


def test_a_listing_that_fails_for_good_is_the_job_s_last_run(collect: Collect, tmp_path: Path) -> None:
    """`offsite collect status` reads the freshness record: a listing refused (here: the partner's
    host key is not the pinned one) is the last run there, not the in_sync run before it."""
    from tests.sftp.sshd_server import keygen

    config: Config = collect.config()
    collect.write("a.csv", b"a" * 10)
    assert collect.run(config) == ["collected"]
    collected_at = (runs.freshness(config.state_bucket_name, collect.name) or {})["last_collected_at"]
    impostor = keygen(tmp_path / "impostor").with_suffix(".pub").read_text().split()
    pinned = f"[127.0.0.1]:{collect.sshd.port} {impostor[0]} {impostor[1]}\n"
    refused = collect.config(partner={"known_hosts": pinned})
    run_id = f"r{uuid.uuid4().hex[:12]}"
    event = cloudevents.pubsub_event(
        collect.stack.project,
        COLLECT_REQUESTS,
        CollectRequest(collect=collect.name, run_id=run_id, ignore_calendar=True).to_json(),
        subscriber="collect-list",
    )
    with pytest.raises(PermanentError, match="HOST KEY MISMATCH"):
        collect_list(event, refused)
    fresh = runs.freshness(config.state_bucket_name, collect.name) or {}
    assert (fresh["last_run_id"], fresh["last_status"]) == (run_id, "failed")
    assert "HOST KEY MISMATCH" in fresh["last_reason"] and fresh["last_collected_at"] == collected_at
