"""Rate limits, server errors, dropped connections and slow commits (the server's fault
injection): uploads complete, and nothing is ever stored twice."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator

import pytest

from devstack.boxapi import BoxApiServer
from shared.config import BoxDestination as BoxSettings
from shared.destinations.box.destination import BoxDestination
from shared.errors import TransientError
from tests.box.support import api_get, put_one_new_version

MB = 1_000_000
LARGE = 20 * MB + 12_345  # three parts of 8 MiB


@pytest.fixture
def box(settings: BoxSettings) -> Iterator[BoxDestination]:
    dest = BoxDestination(settings)
    yield dest
    dest.http.close()


@pytest.fixture(scope="module")
def large_bytes() -> bytes:
    return os.urandom(LARGE)


def assert_single_file(box: BoxDestination, box_server: BoxApiServer, path: str, data: bytes) -> None:
    files = list(box.list(path.rsplit("/", 1)[0]))
    assert [f.path for f in files] == [path]
    assert files[0].sha1 == hashlib.sha1(data).hexdigest() and files[0].size == len(data)
    assert api_get(box_server, f"/files/{files[0].remote_id}/versions")["entries"] == []
    assert box_server.faults() == [], "every injected fault should have fired"


def statuses(box_server: BoxApiServer, operation: str) -> dict[str, int]:
    return box_server.requests(operation)["statuses"].get(operation, {})


@pytest.mark.parametrize(
    ("operation", "fault"),
    [
        ("upload_part", {"action": "rate_limit", "count": 6, "retry_after": 0.1}),
        ("upload_part", {"action": "error", "status": 500, "count": 3}),
        ("upload_part", {"action": "error", "status": 503, "count": 2, "retry_after": 0.1}),
        ("upload_part", {"action": "drop", "count": 2, "after_bytes": 1_000_000}),
        ("commit", {"action": "error", "status": 500, "count": 2}),
        ("commit", {"action": "rate_limit", "count": 3, "retry_after": 0.1}),
        ("commit", {"action": "accepted", "count": 3, "retry_after": 0.1}),
        ("create_upload_session", {"action": "error", "status": 502, "count": 2}),
        ("create_folder", {"action": "rate_limit", "count": 4, "retry_after": 0.1}),
        ("preflight_upload", {"action": "rate_limit", "count": 2, "retry_after": 0.1}),
    ],
)
def test_chunked_upload_survives(
    box: BoxDestination, box_server: BoxApiServer, large_bytes: bytes, operation: str, fault: dict
) -> None:
    box_server.clear_requests()
    box_server.add_fault(operation, **fault)
    result = box.put("storm/tree/big.bin", io.BytesIO(large_bytes), LARGE)
    assert result.status == "uploaded" and result.sha1 == hashlib.sha1(large_bytes).hexdigest()
    assert_single_file(box, box_server, "storm/tree/big.bin", large_bytes)
    assert statuses(box_server, "commit").get("201") == 1


@pytest.mark.parametrize(
    ("operation", "fault"),
    [
        ("upload_file", {"action": "rate_limit", "count": 5, "retry_after": 0.1}),
        ("upload_file", {"action": "error", "status": 500, "count": 2}),
        ("upload_file", {"action": "drop", "count": 1, "after_bytes": 100_000}),
        ("preflight_upload", {"action": "error", "status": 503, "count": 2}),
        ("get_folder_items", {"action": "rate_limit", "count": 2, "retry_after": 0.1}),
    ],
)
def test_small_upload_survives(box: BoxDestination, box_server: BoxApiServer, operation: str, fault: dict) -> None:
    data = os.urandom(3 * MB)
    box.mkdirs("storm")  # so a listing fault hits the stat below, not the upload
    box_server.add_fault(operation, **fault)
    result = box.put("storm/small.bin", io.BytesIO(data), len(data))
    assert result.status == "uploaded"
    assert box.stat("storm/small.bin") is not None
    assert_single_file(box, box_server, "storm/small.bin", data)


def test_a_storm_longer_than_the_retries_fails_transiently_then_redelivery_completes(
    box: BoxDestination, box_server: BoxApiServer, large_bytes: bytes
) -> None:
    box_server.add_fault("upload_part", "rate_limit", count=40, retry_after=0.05)
    with pytest.raises(TransientError):
        box.put("storm/again.bin", io.BytesIO(large_bytes), LARGE)
    assert box.stat("storm/again.bin") is None  # the session was aborted, nothing visible
    box_server.clear_faults()
    result = box.put("storm/again.bin", io.BytesIO(large_bytes), LARGE)  # the redelivered event
    assert result.status == "uploaded"
    assert_single_file(box, box_server, "storm/again.bin", large_bytes)


def test_failed_version_upload_is_retried_into_exactly_one_version(
    box: BoxDestination, box_server: BoxApiServer
) -> None:
    """A new version's upload fails with a 500; the retry (with If-Match) adds exactly one version."""
    box.put("storm/v.bin", io.BytesIO(b"older bytes"), 11)
    box_server.add_fault("upload_file_version", "error", status=500, count=1)
    put_one_new_version(box, box_server, "storm/v.bin", b"newer bytes, of a different length")


def test_commit_polls_while_the_server_is_still_assembling(
    box: BoxDestination, box_server: BoxApiServer, large_bytes: bytes
) -> None:
    """With no time to assemble, Box answers 202 + Retry-After to the commit; we ask again until 201."""
    box_server.clear_requests()
    box_server.configure(commit_wait_s=0.0)  # the box_root fixture restores the settings
    result = box.put("slow/commit.bin", io.BytesIO(large_bytes), LARGE)
    assert result.status == "uploaded"
    assert_single_file(box, box_server, "slow/commit.bin", large_bytes)
    commits = statuses(box_server, "commit")
    assert commits.get("202", 0) >= 1 and commits.get("201") == 1


def test_folders_deleted_behind_the_cache_are_made_again(box: BoxDestination) -> None:
    """An operator deletes part of the tree; the process's cached folder ids are stale (404)."""
    box.put("GCP/bigquery/sales/orders/20250108/r1/a.bin", io.BytesIO(b"a"), 1)
    doomed = box.folders.lookup("GCP/bigquery")
    box.http.call("DELETE", f"{box.http.api}/folders/{doomed}", what="operator", params={"recursive": "true"}).close()
    result = box.put("GCP/bigquery/sales/orders/20250108/r1/b.bin", io.BytesIO(b"b"), 1)
    assert result.status == "uploaded"
    assert [f.path for f in box.list("GCP")] == ["GCP/bigquery/sales/orders/20250108/r1/b.bin"]
    box.mkdirs("GCP/bigquery/sales/customers")
    assert box.stat("GCP/bigquery/sales/orders/20250108/r1/a.bin") is None


def test_a_file_deleted_during_its_version_upload_is_uploaded_anew(
    box: BoxDestination, box_server: BoxApiServer
) -> None:
    import threading

    box.put("gone/f.bin", io.BytesIO(b"old"), 3)
    victim = box.stat("gone/f.bin")
    assert victim is not None
    box_server.add_fault("upload_file_version", "delay", seconds=1.0, count=1)

    def delete_when_the_upload_arrives() -> None:
        while not box_server.requests("upload_file_version")["requests"]:
            threading.Event().wait(0.02)
        box.http.call("DELETE", f"{box.http.api}/files/{victim.remote_id}", what="operator").close()

    deleter = threading.Thread(target=delete_when_the_upload_arrives)
    deleter.start()
    result = box.put("gone/f.bin", io.BytesIO(b"new bytes"), 9)
    deleter.join()
    assert result.status == "uploaded" and result.remote_id != victim.remote_id
    assert [(f.path, f.size) for f in box.list("gone")] == [("gone/f.bin", 9)]
