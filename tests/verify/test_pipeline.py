"""Verify in the whole local pipeline: every function running, events flowing as in the cloud.

export-requests → fan_out → export_table → GCS finalize → upload_box / transfer_sftp →
deliveries → verify → verify-results (+ run history, + Slack sink). Waiting is by polling the
run history until the expected results are there (never by elapsed time).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devstack.state import StackInfo
from devstack.webhook_sink import read_messages
from shared import runtime
from shared.destinations.sftp.destination import SftpDestination
from shared.gcp import clients, gcs
from shared.layout import RunFolder, default_file_name, remote_folder
from shared.manifest import Manifest, ManifestFile
from shared.messages import DeliveryReceipt, Source, VerifyResult
from shared.reporting.history import read as read_history
from shared.topology import DELIVERIES, EXPORT_REQUESTS, FUNCTIONS, VERIFY_REQUESTS

pytestmark = pytest.mark.stack
WAIT_S = 240.0


def seed_products() -> None:
    from devstack.sample_data import seed

    seed(clients.bigquery_client(), clients.project(), tables=("products",))


def history(bucket: str, run_id: str) -> list[VerifyResult]:
    return read_history(bucket, dt.datetime.now(dt.UTC) - dt.timedelta(hours=2), run_ids=[run_id])


def wait_for(bucket: str, run_id: str, done: Callable[[list[VerifyResult]], bool], what: str) -> list[VerifyResult]:
    deadline = time.monotonic() + WAIT_S
    while True:
        results = history(bucket, run_id)
        if done(results):
            return results
        if time.monotonic() > deadline:
            raise AssertionError(
                f"gave up waiting for {what}; results so far: {[(r.destination, r.status) for r in results]}"
            )
        time.sleep(0.5)


def export(info: StackInfo, table: str = "products") -> str:
    run_id = "r" + uuid.uuid4().hex[:12]
    info.pubsub_admin().publish(
        EXPORT_REQUESTS, json.dumps({"dataset": "sales", "tables": [table], "run_id": run_id}).encode()
    )
    return run_id


def final(results: list[VerifyResult], destination: str) -> list[VerifyResult]:
    return [r for r in results if r.destination == destination and r.status in ("in_sync", "mismatch")]


def test_clean_run_is_in_sync_once_for_box_and_sftp(stack_env: StackInfo) -> None:
    seed_products()
    run_id = export(stack_env)
    results = wait_for(
        stack_env.state_bucket,
        run_id,
        lambda rs: bool(final(rs, "box")) and bool(final(rs, "sftp:local")),
        "box and sftp results",
    )
    for destination in ("box", "sftp:local"):
        [result] = final(results, destination)
        assert result.status == "in_sync" and result.check == "sha1", result
        assert result.files_present == result.files_expected >= 1 and result.bytes_present == result.bytes_expected


def test_file_deleted_from_sftp_is_a_mismatch_then_healed(stack_env: StackInfo) -> None:
    seed_products()
    run_id = export(stack_env)
    results = wait_for(stack_env.state_bucket, run_id, lambda rs: bool(final(rs, "sftp:local")), "the sftp result")
    first = final(results, "sftp:local")[0]
    folder = Path(stack_env.sftp.directory) / "sales" / "products" / first.manifest.split("/")[-3] / run_id
    victim = min(p for p in folder.iterdir() if not p.name.startswith("_"))  # a data file, not the manifest
    content = victim.read_bytes()
    victim.unlink()

    stack_env.pubsub_admin().publish(
        VERIFY_REQUESTS, json.dumps({"run_id": run_id, "destination": "sftp:local"}).encode()
    )
    results = wait_for(
        stack_env.state_bucket,
        run_id,
        lambda rs: len(final(rs, "sftp:local")) >= 3,
        "the mismatch and the healed result",
    )
    statuses = [(r.status, r.stage, r.heal_attempts) for r in final(results, "sftp:local")]
    assert statuses == [("in_sync", "verify", 0), ("mismatch", "verify:request", 1), ("in_sync", "verify", 1)]
    assert final(results, "sftp:local")[1].missing == [victim.name]
    assert victim.read_bytes() == content


def test_twenty_concurrent_receipts_give_one_result(stack_env: StackInfo) -> None:
    """A run laid out by hand (no ``_run.json``: the upload functions leave it alone), delivered
    to SFTP from here, then 20 receipts and the manifest's finalize hit the verify function at once."""
    config = runtime.config()
    run_id = "r" + uuid.uuid4().hex[:12]
    source = Source(mode="table", project=stack_env.project, dataset="sales", table="concurrent")
    run = RunFolder(config.export_prefix, source, dt.date(2025, 1, 8), run_id)
    template = default_file_name("concurrent", "PARQUET")
    files = {f"concurrent_20250108-00000000000{i}.parquet": uuid.uuid4().bytes * (100 + i) for i in range(3)}
    folder = remote_folder("nested", run, template).path
    entries = []
    with SftpDestination("local", config.sftp_partner("local")) as sftp:
        for name, data in files.items():
            info = gcs.write(stack_env.bucket, run.prefix + name, data)
            sftp.put(f"{folder}/{name}", io.BytesIO(data), len(data))
            sha1 = hashlib.sha1(data).hexdigest()  # with every SHA-1 known, the delivered manifest is the manifest
            entries.append(
                ManifestFile(name=name, object=info.name, size=len(data), generation=info.generation, sha1=sha1)
            )
        manifest = Manifest(
            run_id=run_id, source=source, date="2025-01-08", bucket=stack_env.bucket, prefix=run.prefix,
            format="PARQUET", compression="SNAPPY", file_name=template, destinations=("sftp:local",),
            job_id="hand-made", row_count=3, schema=[], files=tuple(entries),
            created_at=dt.datetime.now(dt.UTC).isoformat(),
        )  # fmt: skip
        copy = manifest.to_json()  # the manifest copy every destination holds after the data files
        gcs.write(stack_env.bucket, run.delivered_manifest_name, copy)
        sftp.put(f"{folder}/_manifest.json", io.BytesIO(copy), len(copy))
    name = min(files)
    receipt = DeliveryReceipt(
        run_id=run_id, bucket=stack_env.bucket, object=run.prefix + name, generation=entries[0].generation,
        destination="sftp:local", remote_path=f"{folder}/{name}", size=len(files[name]), sha1="0" * 40,
    )  # fmt: skip
    admin = stack_env.pubsub_admin()
    threads = [threading.Thread(target=admin.publish, args=(DELIVERIES, receipt.to_json())) for _ in range(20)]
    threads.append(threading.Thread(target=gcs.write, args=(stack_env.bucket, run.manifest_name, copy)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log = Path(stack_env.component("verify").log)
    handled = (
        "already reported for this round",
        "result published",
        "result already claimed by another instance",
        "manifest not written yet; its finalize event will verify",
    )
    deadline = time.monotonic() + WAIT_S
    while _count_log(log, run_id, handled) < 21:  # every trigger has been decided
        assert time.monotonic() < deadline, f"verify handled {_count_log(log, run_id, handled)} of 21 triggers"
        time.sleep(0.5)
    assert [(r.destination, r.status) for r in history(stack_env.state_bucket, run_id)] == [("sftp:local", "in_sync")]


def _count_log(log: Path, run_id: str, messages: tuple[str, ...]) -> int:
    count = 0
    for line in log.read_text(errors="replace").splitlines():
        if run_id in line and line.startswith("{"):
            try:
                entry: dict[str, Any] = json.loads(line)
            except ValueError:
                continue
            count += entry.get("run_id") == run_id and entry.get("message") in messages
    return count


def test_stopped_upload_function_is_incomplete_from_the_sweep_with_a_slack_message(
    stack_factory: Callable[..., StackInfo], monkeypatch: pytest.MonkeyPatch
) -> None:
    without_sftp = [fn.name for fn in FUNCTIONS if fn.name != "transfer_sftp"]
    info = stack_factory(functions=without_sftp)
    for key, value in info.env.items():
        monkeypatch.setenv(key, value)
    clients.reset()
    runtime.reset()
    try:
        seed_products()
        run_id = export(info)
        wait_for(info.state_bucket, run_id, lambda rs: bool(final(rs, "box")), "the box result")
        from shared.verify.sweep import sweep

        sweep(runtime.config(), now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=3))
        [incomplete] = [r for r in history(info.state_bucket, run_id) if r.destination == "sftp:local"]
        assert incomplete.status == "incomplete" and incomplete.stage == "verify:sweep"
        assert incomplete.missing and incomplete.files_present == 0
        texts = [m["text"] for m in read_messages(info.alerts_file) if run_id in m.get("text", "")]
        assert len(texts) == 1 and "incomplete" in texts[0] and incomplete.missing[0] in texts[0]
        assert f"offsite verify {run_id} --destination sftp:local" in texts[0]
    finally:
        clients.reset()
        runtime.reset()
