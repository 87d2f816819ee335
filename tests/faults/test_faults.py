"""The fault suite on the local stack (issue: 0 files lost, 0 corrupt, 0 duplicated at the
destination, every failure visible on verify-results, nothing stuck outside the DLQ).

Each test drives the real functions through the real push dispatcher: data files written to the
exports bucket start the uploads, the manifest written last starts verify, and the outcome is
read where users read it: the destination's files and the run history (`offsite status`), and
no dead-letter queue holds anything of the run (every fault here must cost retries only).
Other faults are covered closer to their code too: an SFTP connection cut mid-file by a proxy
(tests/sftp/test_delivery.py), Box faults per request (tests/box/test_faults.py), a function
killed and restarted by the supervisor (tests/stack/test_push.py), dead letters becoming
results (tests/stack/test_dead_letter_reports.py), a host-key change under a warm pool
(tests/sftp/test_pool.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from typing import Any

import psutil
import pytest

from devstack.state import StackInfo
from shared.destinations.box.destination import BoxDestination
from shared.gcp import gcs
from tests.faults.kit import FaultKit, FaultRun
from tests.run_folders import eventually
from tests.stack.test_push import push_log, push_stats

pytestmark = pytest.mark.stack
MB = 1024 * 1024


def function_process(info: StackInfo, name: str) -> psutil.Process:
    """The live functions-framework process of ``name`` in this stack (the supervisor may have
    restarted it: found by its port, not by a recorded pid)."""
    port = info.functions[name].rsplit(":", 1)[1].strip("/")
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if any(arg == f"--port={port}" for arg in cmdline) and any(f"--target={name}" == a for a in cmdline):
            return proc
    raise AssertionError(f"no running {name} function on port {port}")


def box_files(kit: FaultKit, run: FaultRun) -> dict[str, str]:
    """name → SHA-1 of the run's files in the local Box."""
    settings = kit.config.destinations.box
    assert settings is not None
    folder = f"GCP/bigquery/sales/{run.folder.source.table}/20250108/{run.run_id}"
    return {f.path.rsplit("/", 1)[1]: f.sha1 or "" for f in BoxDestination(settings).list(folder)}


def box_admin(info: StackInfo, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{info.box.base_url}/_admin{path}", data=data, method=method)
    request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def assert_delivered_once(kit: FaultKit, run: FaultRun, destination: str) -> None:
    """Every file whole, nothing extra, and exactly one final `in_sync` for the destination."""
    final = eventually(lambda: kit.final(run, destination), f"a final result for {destination}")
    assert [r.status for r in final] == ["in_sync"], [(r.status, r.reason) for r in final]
    assert final[0].check == "sha1"
    # ... and, after them, the run's manifest copy with every file's SHA-1 (shared/delivery/manifest_copy.py)
    delivered = gcs.read_bytes(kit.config.bucket, run.folder.delivered_manifest_name)
    assert delivered is not None
    expected = {n: run.sha1(n) for n in run.files} | {"_manifest.json": hashlib.sha1(delivered).hexdigest()}
    if destination == "box":
        assert box_files(kit, run) == expected
    else:
        landed = {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in kit.sftp_dir(run).iterdir()}
        assert landed == expected  # no .partial, no duplicate
    assert kit.dead_letters(run) == []  # the fault cost retries, not a dead letter


def test_a_function_killed_mid_transfer_delivers_the_file_once(kit: FaultKit) -> None:
    run = kit.new_run({"big": 96 * MB}, ("sftp:local",))
    (name,) = run.files
    partial = kit.sftp_dir(run) / (name + ".partial")
    kit.upload(run, name)
    deadline = time.monotonic() + 120
    while not partial.exists():  # the transfer is under way ...
        assert time.monotonic() < deadline, "the transfer never started"
        time.sleep(0.005)
    victim = function_process(kit.info, "transfer_sftp")
    victim.send_signal(signal.SIGKILL)  # ... and its function dies mid-file
    kit.finish(run)
    eventually(lambda: function_process(kit.info, "transfer_sftp").pid != victim.pid, "the function restarted")
    assert_delivered_once(kit, run, "sftp:local")


def test_upload_box_killed_mid_session_delivers_the_file_once(kit: FaultKit) -> None:
    """upload_box dies while parts of a Box upload session are in flight (the local Box server
    holds them: a delay fault); the supervisor restarts it and the redelivered event ends with
    the file in Box once and whole."""
    [held] = box_admin(
        kit.info,
        "POST",
        "/faults",
        {"operation": "upload_part", "action": "delay", "seconds": 5, "count": 4, "skip": 1},
    )["faults"]
    try:
        run = kit.new_run({"session": 40 * MB}, ("box",))
        (name,) = run.files
        kit.upload(run, name)

        def part_held() -> bool:
            faults = {f["id"]: f for f in box_admin(kit.info, "GET", "/faults")["faults"]}
            return held["id"] not in faults or faults[held["id"]]["fired"] > 0

        eventually(part_held, "a part of the upload session in flight")
        victim = function_process(kit.info, "upload_box")
        victim.send_signal(signal.SIGKILL)  # mid-session
        kit.finish(run)
        eventually(lambda: function_process(kit.info, "upload_box").pid != victim.pid, "the function restarted")
        assert_delivered_once(kit, run, "box")
    finally:
        box_admin(kit.info, "DELETE", "/faults")


def test_sftp_disconnects_mid_file_cost_a_retry_not_the_file(kit: FaultKit) -> None:
    """The partner's server drops every connection while a file is being written (each SSH
    session's process of the stack's sshd killed; the daemon keeps listening): the delivery is
    retried and the file arrives once and whole, nothing dead-lettered."""
    run = kit.new_run({"cut": 96 * MB}, ("sftp:local",))
    (name,) = run.files
    partial = kit.sftp_dir(run) / (name + ".partial")
    kit.upload(run, name)
    deadline = time.monotonic() + 120
    while not (partial.exists() and partial.stat().st_size > 0):  # bytes are arriving ...
        assert time.monotonic() < deadline, "the transfer never started"
        time.sleep(0.005)
    sshd = psutil.Process(kit.info.component("sftp").pid)
    sessions = sshd.children(recursive=True)
    assert sessions, "no SSH session process to cut (the stack's SFTP server is not OpenSSH?)"
    killed = 0
    for session in sessions:  # ... and the server drops the connection mid-file
        try:
            session.send_signal(signal.SIGKILL)
            killed += 1
        except psutil.NoSuchProcess:
            pass  # it ended with a session process killed before it (its parent): gone, as wanted
    assert killed, f"every SSH session process had ended before the cut: {sessions}"
    assert partial.exists(), "the file was complete before the cut: nothing was tested"
    kit.finish(run)
    assert_delivered_once(kit, run, "sftp:local")  # ... and nothing was dead-lettered
    assert sshd.is_running()


def test_box_429_storms_and_5xx_cost_retries_not_files(kit: FaultKit) -> None:
    box_admin(
        kit.info, "POST", "/faults", {"operation": "upload_part", "action": "rate_limit", "count": 6, "retry_after": 1}
    )
    box_admin(kit.info, "POST", "/faults", {"operation": "upload_file", "action": "error", "status": 503, "count": 3})
    box_admin(kit.info, "POST", "/faults", {"operation": "commit", "action": "error", "status": 500, "count": 2})
    try:
        run = kit.new_run({"session": 24 * MB, "small": 300_000, "other": 50_000}, ("box",))
        for name in run.files:
            kit.upload(run, name)
        kit.finish(run)
        assert_delivered_once(kit, run, "box")
        assert box_admin(kit.info, "GET", "/faults")["faults"] == []  # every injected fault fired (then expired)
    finally:
        box_admin(kit.info, "DELETE", "/faults")


def test_duplicate_and_out_of_order_events_deliver_each_file_once(kit: FaultKit) -> None:
    run = kit.new_run({"a": 2 * MB, "b": 100_000}, ("box", "sftp:local"))
    for name in run.files:
        kit.upload(run, name)
    kit.finish(run)
    # Replay every event again, manifest first (out of order), then each data file twice:
    # what an at-least-once transport may do.
    admin = kit.info.pubsub_admin()
    replays = set()
    for name in [run.folder.manifest_name, *(run.folder.prefix + n for n in run.files)] * 2:
        resource = kit_resource(kit, name)
        replays.add(
            admin.publish(  # as fake-gcs-server notifies: the relay turns it into a finalize CloudEvent
                "gcs-notifications",
                json.dumps(resource).encode(),
                eventType="OBJECT_FINALIZE",
                payloadFormat="JSON_API_V1",
                bucketId=kit.config.bucket,
                objectId=name,
                objectGeneration=str(resource["generation"]),
            )
        )
    # The replays run beside the first deliveries (the manifest was just written), so what landed
    # is judged once every event was handled: the relay answers the push when its functions have.
    # Each replay acked is not enough: a first delivery answered "retry" (another delivery was
    # writing the file) comes back later and may be writing its .partial when the files are listed.
    eventually(lambda: replays <= acked_messages(kit) and settled(kit), "every event handled and none to retry")
    for destination in ("box", "sftp:local"):
        assert_delivered_once(kit, run, destination)
    time.sleep(2)  # let the replays finish: still one final result each
    for destination in ("box", "sftp:local"):
        assert [r.status for r in kit.final(run, destination)] == ["in_sync"]


def acked_messages(kit: FaultKit) -> set[str]:
    """Message ids the stack's push dispatcher has delivered and acked (its log)."""
    return {e["message_id"] for e in push_log(kit.info) if e.get("action") == "ack" and "message_id" in e}


def settled(kit: FaultKit) -> bool:
    """Nothing in delivery and nothing waiting to be retried: every message the push dispatcher
    handled was last acked (or dead-lettered), and no subscription has a message in hand."""
    last: dict[str, str] = {}
    for entry in push_log(kit.info):
        if "message_id" in entry:
            last[entry["message_id"]] = str(entry.get("action"))
    if any(action not in ("ack", "dead-letter") for action in last.values()):
        return False
    stats = push_stats(kit.info)["subscriptions"]
    return all(s["leased"] == 0 and s["delivering"] == 0 for s in stats.values())


def kit_resource(kit: FaultKit, name: str) -> dict[str, Any]:
    """The object resource a GCS notification carries."""
    from shared.gcp import clients

    blob = clients.storage_client().bucket(kit.config.bucket).get_blob(name)
    assert blob is not None, name
    return dict(blob._properties)


def test_a_function_down_for_60s_while_events_arrive_loses_nothing(kit: FaultKit) -> None:
    victim = function_process(kit.info, "upload_box")
    victim.send_signal(signal.SIGSTOP)  # it accepts nothing for a minute (pushes wait, then retry)
    try:
        run = kit.new_run({f"f{i}": 200_000 + i for i in range(4)}, ("box",))
        for name in run.files:
            kit.upload(run, name)
        kit.finish(run)
        time.sleep(60)
    finally:
        victim.send_signal(signal.SIGCONT)
    assert_delivered_once(kit, run, "box")  # ... and nothing was dead-lettered


def test_a_host_key_change_refuses_the_next_delivery_and_says_so(kit: FaultKit) -> None:
    from devstack.stack import restart_component

    first = kit.new_run({"warm": 100_000}, ("sftp:local",))
    (name,) = first.files
    kit.upload(first, name)
    eventually(lambda: (kit.sftp_dir(first) / name).exists(), "a delivery that warms the pool")
    key = kit.info.sftp.host_key_path
    saved = key.read_bytes(), key.with_suffix(".pub").read_bytes()
    try:
        key.unlink()
        key.with_suffix(".pub").unlink()
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        restart_component(kit.info.root, "sftp")  # the server now offers another key
        second = kit.new_run({"after": 100_000}, ("sftp:local",))
        (after,) = second.files
        kit.upload(second, after)
        failed = eventually(
            lambda: [r for r in kit.results(second) if r.status == "failed"], "the refused delivery reported"
        )
        assert "HOST KEY MISMATCH" in (failed[0].reason or "") and failed[0].destination == "sftp:local"
        assert not (kit.sftp_dir(second) / after).exists()
        assert kit.dead_letters(second) == []  # refused for good: reported, not retried into the DLQ
    finally:
        key.write_bytes(saved[0])
        key.with_suffix(".pub").write_bytes(saved[1])
        os.chmod(key, 0o600)
        restart_component(kit.info.root, "sftp")
