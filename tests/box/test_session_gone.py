"""An upload session that Box drops while an invocation still sends to it: the same continuation
running twice at once (the other one committed it: 404), or the session expiring (410). Either
is a TransientError, and the retry ends in success with one file and no extra version."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import time

import pytest

from devstack.boxapi import BoxApiServer
from shared.config import BoxDestination as BoxSettings
from shared.destinations.base import Progress, PutResult
from shared.destinations.box.destination import BoxDestination
from shared.errors import TransientError
from tests.box.support import api_get, box_settings

MB = 1_000_000
SIZE = 20 * MB + 12_345  # an upload session of three 8 MiB parts
WEEK_S = 7 * 24 * 3600.0  # the server's default session lifetime (Box's)


@pytest.fixture(scope="module")
def data() -> bytes:
    return os.urandom(SIZE)


def paused(box: BoxDestination, path: str, data: bytes) -> Progress:
    """A first invocation out of time after one part: its checkpoint state continues the session."""
    first = box.put_resumable(path, io.BytesIO(data), len(data), deadline=time.monotonic() - 1)
    assert isinstance(first, Progress) and 0 < first.bytes_done < len(data)
    return first


class HeldSource(io.BytesIO):
    """A continuation's GCS reader that starts reading only once ``go`` is set."""

    def __init__(self, data: bytes, go: threading.Event) -> None:
        super().__init__(data)
        self.go = go

    def read(self, size: int | None = -1) -> bytes:
        assert self.go.wait(60)
        return super().read(size)


def assert_one_file(box_server: BoxApiServer, box: BoxDestination, path: str, data: bytes) -> None:
    (remote,) = box.list(path.rsplit("/", 1)[0])
    assert remote.path == path and remote.sha1 == hashlib.sha1(data).hexdigest()
    assert api_get(box_server, f"/files/{remote.remote_id}/versions")["entries"] == []


def test_the_same_continuation_twice_at_once_ends_in_success(
    settings: BoxSettings, box_server: BoxApiServer, data: bytes
) -> None:
    """B has taken over the session (listed its parts) when A sends the rest and commits; B's
    next part gets 404 "Upload session not found". That was a PermanentError: the delivery was
    reported failed although Box holds the file."""
    path = "GCP/bigquery/ds/t/20250108/r1/dup.bin"
    box = BoxDestination(settings)
    state = paused(box, path, data).state
    a_done, outcome = threading.Event(), {}

    def run_b() -> None:
        try:
            outcome["b"] = box.put_resumable(
                path, HeldSource(data, a_done), SIZE, resume=state, deadline=time.monotonic() + 120
            )
        except Exception as exc:  # noqa: BLE001 - judged below
            outcome["b"] = exc

    b = threading.Thread(target=run_b)
    b.start()
    while box_server.request_counts().get("list_parts", 0) < 1:  # B is restoring the session
        time.sleep(0.05)
    time.sleep(0.5)  # and has its parts
    a = BoxDestination(settings).put_resumable(
        path, io.BytesIO(data), SIZE, resume=state, deadline=time.monotonic() + 120
    )
    assert isinstance(a, PutResult) and a.status == "uploaded"
    a_done.set()
    b.join(120)
    assert isinstance(outcome["b"], TransientError), outcome["b"]
    # The delivery's retry (shared.delivery.operation retries a TransientError) finds A's file.
    again = box.put_resumable(path, io.BytesIO(data), SIZE, resume=state, deadline=time.monotonic() + 120)
    assert isinstance(again, PutResult) and again.status == "unchanged" and again.remote_id == a.remote_id
    assert_one_file(box_server, box, path, data)


def test_a_session_expiring_while_its_parts_are_sent_is_retried(
    box_server: BoxApiServer, box_root: str, data: bytes
) -> None:
    """The session is alive when the continuation takes it over and expires before its next part
    arrives (410 session_expired): that was a PermanentError; the retry opens a new session."""
    path = "GCP/expiring.bin"
    box = BoxDestination(box_settings(box_server, box_root, parallel_parts=1))  # one part at a time
    box_server.configure(session_ttl_s=3)
    state = paused(box, path, data).state
    box_server.add_fault("upload_part", "delay", seconds=4, count=1)  # lands after the session's end
    with pytest.raises(TransientError, match="session_expired"):
        box.put_resumable(path, io.BytesIO(data), SIZE, resume=state, deadline=time.monotonic() + 120)
    box_server.configure(session_ttl_s=WEEK_S)
    again = box.put_resumable(path, io.BytesIO(data), SIZE, resume=state, deadline=time.monotonic() + 120)
    assert isinstance(again, PutResult) and again.status == "uploaded"
    assert_one_file(box_server, box, path, data)
