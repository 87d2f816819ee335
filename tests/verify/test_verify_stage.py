"""The verify stage in this process, on the local stack's GCS and Pub/Sub, with real-shaped events.

The destination here is ``memory`` (the process's in-memory backend) so each test controls
exactly what is delivered; tests/verify/test_verify_destinations.py does the same on the
stack's SFTP server and Box API, and test_pipeline.py runs the whole pipeline.
"""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest

from shared.destinations import memory
from shared.gcp import gcs
from shared.reporting.history import read as read_history
from shared.verify.heal import HEAL_ATTEMPT_KEY, HEAL_DESTINATION_KEY
from shared.verify.markers import Kind, marker, read_state, rejected_name
from tests.verify.conftest import SECOND, THREE_FILES, VerifyStack

pytestmark = pytest.mark.stack

FILES = THREE_FILES


def test_clean_run_is_in_sync_exactly_once_with_20_concurrent_receipts(vstack: VerifyStack) -> None:
    run = vstack.new_run(FILES)
    receipts = vstack.deliver_all(run)
    events = [vstack.pubsub_event("deliveries", receipts[i % len(receipts)].to_json()) for i in range(20)]
    errors: list[BaseException] = []

    def handle(event: dict) -> None:
        try:
            vstack.run_verify(event)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=handle, args=(e,)) for e in events]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    vstack.manifest_finalized(run)  # the manifest's own trigger comes too: still one result
    assert errors == []
    results = vstack.results_for(run)
    assert [r.status for r in results] == ["in_sync"], results
    result = results[0]
    assert result.destination == "memory" and result.check == "sha1"
    assert (result.files_expected, result.files_present) == (3, 3)
    assert result.bytes_expected == result.bytes_present == sum(len(d) for d in FILES.values())
    assert result.to_dict()["source"] == {
        "mode": "table",
        "project": vstack.info.project,
        "dataset": "sales",
        "table": "orders",
    }
    assert result.manifest == gcs.uri(vstack.bucket, run.folder.manifest_name) and result.duration_s is not None
    history = read_history(vstack.state_bucket, dt.datetime.now(dt.UTC) - dt.timedelta(days=1), run_ids=[run.run_id])
    assert [r.status for r in history] == ["in_sync"]
    assert gcs.stat(vstack.state_bucket, marker(run.folder.prefix, "memory", Kind.RESULT, 0)) is not None


def test_nothing_is_published_until_every_file_is_there(vstack: VerifyStack) -> None:
    run = vstack.new_run(FILES)
    names = sorted(FILES)
    vstack.receipt(vstack.deliver(run, names[0]))
    vstack.manifest_finalized(run)
    vstack.receipt(vstack.deliver(run, names[1]))
    assert vstack.results_for(run) == []
    vstack.receipt(vstack.deliver(run, names[2]))
    assert [r.status for r in vstack.results_for(run)] == ["in_sync"]


def test_receipts_before_the_manifest_wait_for_its_finalize_event(vstack: VerifyStack) -> None:
    run = vstack.new_run(FILES, manifest=False)
    for receipt in vstack.deliver_all(run):
        vstack.receipt(receipt)
    assert vstack.results_for(run) == []
    vstack.write_manifest(run)
    vstack.manifest_finalized(run)
    assert [r.status for r in vstack.results_for(run)] == ["in_sync"]


def test_deleted_file_is_a_mismatch_then_self_heal_restores_it(vstack: VerifyStack) -> None:
    run = vstack.new_run(FILES)
    for receipt in vstack.deliver_all(run):
        vstack.receipt(receipt)
    assert [r.status for r in vstack.results_for(run)] == ["in_sync"]
    before = gcs.stat(vstack.bucket, run.folder.prefix + SECOND)
    memory.process_destination().delete(vstack.remote_path(run, SECOND))

    vstack.request({"run_id": run.run_id, "destination": "memory"})
    mismatch = vstack.results_for(run)[-1]
    assert mismatch.status == "mismatch" and mismatch.missing == [SECOND]
    assert mismatch.heal_attempts == 1 and "self-heal attempt 1 of 1" in (mismatch.reason or "")
    assert mismatch.stage == "verify:request"
    # The heal rewrote the GCS object: a new generation (a new finalize event) naming the destination.
    healed = gcs.stat(vstack.bucket, run.folder.prefix + SECOND)
    assert healed is not None and before is not None and healed.generation > before.generation
    assert healed.metadata[HEAL_DESTINATION_KEY] == "memory" and healed.metadata[HEAL_ATTEMPT_KEY] == "1"

    # A receipt of the old generation does not settle the heal; the re-delivery's does.
    vstack.receipt(vstack.deliver(run, min(FILES)))
    assert len(vstack.results_for(run)) == 2
    vstack.receipt(vstack.deliver(run, SECOND))
    final = vstack.results_for(run)[-1]
    assert [r.status for r in vstack.results_for(run)] == ["in_sync", "mismatch", "in_sync"]
    assert final.heal_attempts == 1 and final.stage == "verify" and "after 1 self-heal" in (final.reason or "")


def test_corrupted_byte_is_hash_differs_and_is_healed_before_anything_is_published(vstack: VerifyStack) -> None:
    run = vstack.new_run(FILES)
    damaged = bytearray(FILES[SECOND])
    damaged[100] ^= 0x01
    receipts = [vstack.deliver(run, n, data=bytes(damaged) if n == SECOND else None) for n in sorted(FILES)]
    for receipt in receipts:
        vstack.receipt(receipt)
    assert vstack.results_for(run) == []  # a repairable mismatch is healed first
    state = read_state(vstack.state_bucket, run.folder.prefix, "memory")
    assert state.heal_attempts == 1
    vstack.receipt(vstack.deliver(run, SECOND))
    results = vstack.results_for(run)
    assert [(r.status, r.heal_attempts) for r in results] == [("in_sync", 1)]


def test_corrupted_byte_without_self_heal_is_one_mismatch_with_an_alert(vstack_factory) -> None:
    vstack = vstack_factory(self_heal=False)
    run = vstack.new_run(FILES)
    damaged = bytearray(FILES[SECOND])
    damaged[7] ^= 0x80
    receipts = [vstack.deliver(run, n, data=bytes(damaged) if n == SECOND else None) for n in sorted(FILES)]
    for receipt in receipts + receipts:
        vstack.receipt(receipt)
    results = vstack.results_for(run)
    assert [r.status for r in results] == ["mismatch"]
    assert results[0].hash_differs == [SECOND] and results[0].missing == [] and results[0].check == "sha1"
    assert "self-heal is off" in (results[0].reason or "")
    texts = [a["text"] for a in vstack.alerts() if run.run_id in a.get("text", "")]
    assert len(texts) == 1 and f"hash differs (1): {SECOND}" in texts[0]
    assert f"offsite verify {run.run_id} --destination memory" in texts[0]


def test_extra_file_is_a_mismatch_naming_it(vstack: VerifyStack) -> None:
    run = vstack.new_run(FILES)
    extra = vstack.remote_path(run, "orders_20250108-000000000003.parquet.partial")
    import io

    memory.process_destination().put(extra, io.BytesIO(b"half"), 4)
    for receipt in vstack.deliver_all(run):
        vstack.receipt(receipt)
    results = vstack.results_for(run)
    assert [r.status for r in results] == ["mismatch"]
    assert results[0].extra == ["orders_20250108-000000000003.parquet.partial"] and results[0].heal_attempts == 0
    assert ".partial" in (results[0].reason or "")


def test_on_demand_forms_and_destination_filter(vstack: VerifyStack) -> None:
    run = vstack.new_run(FILES)
    vstack.deliver_all(run)
    vstack.request({"dataset": "sales", "table": "orders", "date": "2025-01-08"})
    vstack.request({"run_id": run.run_id})
    statuses = [(r.status, r.stage) for r in vstack.results_for(run)]
    assert statuses == [("in_sync", "verify:request"), ("in_sync", "verify:request")]


def test_on_demand_while_delivering_is_incomplete_and_heals_nothing(vstack: VerifyStack) -> None:
    run = vstack.new_run(FILES)
    vstack.deliver(run, min(FILES))
    vstack.request({"run_id": run.run_id})
    result = vstack.results_for(run)[-1]
    assert result.status == "incomplete" and result.missing == sorted(FILES)[1:] and result.heal_attempts == 0
    assert read_state(vstack.state_bucket, run.folder.prefix, "memory").heal_attempts == 0


def test_on_demand_for_a_run_whose_export_did_not_finish(vstack: VerifyStack) -> None:
    run = vstack.new_run(FILES, manifest=False)
    vstack.request({"run_id": run.run_id})
    result = vstack.results_for(run)[-1]
    assert result.status == "incomplete" and "export incomplete" in (result.reason or "")
    assert result.destination == "memory"


@pytest.mark.parametrize(
    "body, expected",
    [
        ("{not json", "not valid JSON"),
        ('["a list"]', "expected a JSON object"),
        ('{"run_id": "r1", "sweep": true}', "exactly one of"),
        ('{"dataset": "sales", "table": "orders"}', "required together"),
        ('{"run_id": "r1", "destination": "ftp:x"}', "destination"),
        ('{"run_id": "r1", "schema_version": 7}', "schema_version"),
    ],
)
def test_malformed_requests_are_rejected_and_acked(vstack: VerifyStack, body: str, expected: str) -> None:
    vstack.request(body)  # returns: acked, not retried
    rejected = [r for r in vstack.results() if r.status == "rejected" and r.stage == "verify"]
    assert len(rejected) == 1 and expected in (rejected[0].reason or ""), rejected


def test_unknown_run_id_is_rejected(vstack: VerifyStack) -> None:
    vstack.request({"run_id": "rdoesnotexist1"})
    rejected = [r for r in vstack.results() if r.status == "rejected"]
    assert len(rejected) == 1 and "no run found" in (rejected[0].reason or "")
    assert rejected[0].run_id is None or rejected[0].run_id == "rdoesnotexist1"
    # what was asked, as asked: not the fields the request left at their defaults
    assert f"no run found for {{'run_id': 'rdoesnotexist1'}} under gs://{vstack.config.bucket}/" in (
        rejected[0].reason or ""
    ), rejected[0].reason


@pytest.mark.parametrize(
    "raw, expected",
    [(b"{ this is not json", "not valid JSON"), (json.dumps({"schema_version": 99}).encode(), "schema_version")],
)
def test_bad_manifest_is_rejected_once_and_acked(vstack: VerifyStack, raw: bytes, expected: str) -> None:
    run = vstack.new_run(FILES, manifest=False)
    vstack.write_manifest(run, raw=raw)
    receipts = vstack.deliver_all(run)
    vstack.manifest_finalized(run)
    for receipt in receipts:
        vstack.receipt(receipt)
    results = vstack.results_for(run)
    assert [r.status for r in results] == ["rejected"] and expected in (results[0].reason or "")
    assert gcs.stat(vstack.state_bucket, rejected_name(run.folder.prefix)) is not None
    vstack.request({"run_id": run.run_id})  # on demand: said again, every time
    assert [r.status for r in vstack.results_for(run)] == ["rejected", "rejected"]


def test_other_objects_are_ignored(vstack: VerifyStack) -> None:
    run = vstack.new_run(FILES)
    vstack.run_verify(vstack.storage_event(run.folder.prefix + SECOND))
    vstack.run_verify(vstack.storage_event(run.folder.run_name))
    assert vstack.results() == []


def test_receipt_for_an_object_outside_the_exports_is_rejected(vstack: VerifyStack) -> None:
    run = vstack.new_run(FILES)
    receipt = vstack.deliver(run, SECOND)
    bad = receipt.__class__(**{**receipt.__dict__, "object": "elsewhere/file.parquet"})
    vstack.receipt(bad)
    rejected = vstack.results()
    assert [r.status for r in rejected] == ["rejected"] and "not a run file" in (rejected[0].reason or "")
