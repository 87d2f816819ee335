"""DriveDestination on the local Drive server, beyond the conformance suite: tokens refreshed
before expiry, a revoked refresh token, rate limits and server errors retried, interrupted
uploads resumed or replaced, Shared Drives through a service account, racing creators."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from devstack.driveapi import DriveApiServer
from shared.destinations.base import MemoryLedger, Progress, PutResult
from shared.destinations.drive.destination import DriveDestination
from shared.errors import PermanentError
from shared.secrets import Secret
from tests.drive.support import (
    new_folder,
    new_shared_drive,
    oauth_settings,
    service_account_settings,
    shared_drive_files,
)
from tests.threads import together

REPO = Path(__file__).resolve().parents[2]

CHUNK = 256 * 1024


def destination(drive: DriveApiServer, **overrides: object) -> DriveDestination:
    return DriveDestination("t", oauth_settings(drive, new_folder(drive), **overrides))  # type: ignore[arg-type]


def put(dest: DriveDestination, path: str, data: bytes) -> PutResult:
    return dest.put(path, io.BytesIO(data), len(data))


def test_tokens_are_refreshed_before_they_expire(drive: DriveApiServer) -> None:
    """google-auth renews a token 3 min 45 s before its expiry: tokens living 200 s are renewed
    before every call, so Drive never sees an expired one; tokens living an hour, once."""
    drive.configure(token_ttl_s=200)
    dest = destination(drive)
    drive.clear_requests()
    put(dest, "a/one.txt", b"1")
    assert dest.stat("a/one.txt") is not None
    counts, statuses = drive.request_counts(), drive.statuses()
    api_calls = sum(n for op, n in counts.items() if op != "token")
    assert counts["token"] == api_calls > 3
    assert not [s for s in statuses if s.endswith(" 401")]
    drive.configure(token_ttl_s=3600)
    dest = destination(drive)
    drive.clear_requests()
    put(dest, "b/two.txt", b"2")
    assert dest.stat("b/two.txt") is not None
    assert drive.request_counts()["token"] == 1


def test_a_token_drive_stops_accepting_is_refreshed_once(drive: DriveApiServer) -> None:
    dest = destination(drive)
    put(dest, "x.txt", b"x")
    drive.expire_tokens()  # e.g. revoked access token: the next call is a 401
    drive.clear_requests()
    assert dest.stat("x.txt") is not None
    statuses = drive.statuses()
    assert statuses["files.list 401"] == 1 and drive.request_counts()["token"] == 1


def test_a_revoked_refresh_token_says_how_to_fix_it(drive: DriveApiServer, tmp_path: Path) -> None:
    refresh = drive.refresh_token("erin@example.com")
    stored = tmp_path / "refresh_token"
    stored.write_text(refresh)
    settings = oauth_settings(drive, "root", refresh_token=refresh)
    auth = settings.auth.model_copy(update={"refresh_token": Secret(f"file:{stored}")})
    dest = DriveDestination("reports", settings.model_copy(update={"auth": auth}))
    drive.revoke(refresh)
    with pytest.raises(PermanentError) as refused:
        put(dest, "r.txt", b"r")
    message = str(refused.value)
    assert "invalid_grant" in message and "revoked" in message and "authorize the app again" in message
    assert "A new refresh token" in message and "A new refresh token" in (REPO / "docs" / "drive.md").read_text()
    assert f"destinations.drive.reports.auth.refresh_token (file:{stored})" in message  # where to put the new one
    assert refresh not in message  # the secret itself is never shown


def test_rate_limits_and_server_errors_are_retried(drive: DriveApiServer) -> None:
    dest = destination(drive, chunk_size_bytes=CHUNK)
    data = os.urandom(3 * CHUNK + 7)
    drive.add_fault("files.list", "rate_limit", count=2)
    drive.add_fault("upload.start", "too_many", retry_after=0)
    drive.add_fault("upload.chunk", "error", status=503, skip=1)
    drive.add_fault("upload.chunk", "drop", skip=1)  # stored, answer lost: the status query finds it
    result = put(dest, "f/data.bin", data)
    assert result.status == "uploaded" and result.sha1 == hashlib.sha1(data).hexdigest()
    statuses = drive.statuses()
    assert statuses["files.list 403"] == 2 and statuses["upload.start 429"] == 1 and statuses["upload.chunk 503"] == 1
    assert drive.admin("GET", "/faults")["faults"] == []  # every injected fault fired
    with dest.open("f/data.bin") as stream:
        assert stream.read() == data
    assert [f.path for f in dest.list("f")] == ["f/data.bin"]


def test_an_interrupted_upload_resumes_from_its_checkpoint(drive: DriveApiServer) -> None:
    dest = destination(drive, chunk_size_bytes=CHUNK)
    data = os.urandom(4 * CHUNK + 3)
    first = dest.put_resumable("r/big.bin", io.BytesIO(data), len(data), ledger=MemoryLedger(), deadline=0.0)
    assert isinstance(first, Progress) and first.bytes_done == CHUNK
    assert dest.stat("r/big.bin") is None  # nothing visible until the last byte
    drive.clear_requests()
    done = dest.put_resumable("r/big.bin", io.BytesIO(data), len(data), ledger=MemoryLedger(), resume=first.state)
    assert isinstance(done, PutResult) and done.sha1 == hashlib.sha1(data).hexdigest()
    counts = drive.request_counts()
    assert "upload.start" not in counts  # the same session continued
    assert counts["upload.chunk"] == 1 + 4  # one status query, then the four chunks not yet sent
    with dest.open("r/big.bin") as stream:
        assert stream.read() == data


class Breaks(io.BytesIO):
    """A source whose connection dies after ``limit`` bytes (an invocation killed mid-transfer)."""

    def __init__(self, data: bytes, limit: int) -> None:
        super().__init__(data)
        self.limit = limit

    def read(self, size: int | None = -1, /) -> bytes:
        if self.tell() >= self.limit:
            raise ConnectionResetError("source connection lost")
        return super().read(size if size is not None and size >= 0 else self.limit - self.tell())


def test_a_crash_past_the_checkpoint_is_replaced_never_left_partial(drive: DriveApiServer) -> None:
    """The checkpoint says one chunk, Drive holds two (the dead invocation sent one more): the
    unprovable session is dropped and the upload starts over; exactly one whole file results."""
    dest = destination(drive, chunk_size_bytes=CHUNK)
    data = os.urandom(4 * CHUNK + 3)
    checkpoint = dest.put_resumable("c/f.bin", io.BytesIO(data), len(data), deadline=0.0)
    assert isinstance(checkpoint, Progress)
    with pytest.raises(ConnectionResetError):
        dest.put_resumable("c/f.bin", Breaks(data, 2 * CHUNK), len(data), resume=checkpoint.state, deadline=1e12)
    assert dest.stat("c/f.bin") is None and list(dest.list("c")) == []
    done = dest.put_resumable("c/f.bin", io.BytesIO(data), len(data), resume=checkpoint.state)
    assert isinstance(done, PutResult) and done.status == "uploaded"
    assert [(f.path, f.size) for f in dest.list("c")] == [("c/f.bin", len(data))]
    assert [s for s in drive.sessions() if not s["done"]] == []  # the dropped session is cancelled


def test_shared_drive_through_a_service_account(drive: DriveApiServer) -> None:
    shared = new_shared_drive(drive)
    dest = DriveDestination("team", service_account_settings(drive, shared))
    data = os.urandom(50_000)
    assert put(dest, "GCP/sales/orders/part-0.parquet", data).status == "uploaded"
    assert put(dest, "GCP/sales/orders/part-0.parquet", data).status == "unchanged"
    assert [f.path for f in dest.list("GCP")] == ["GCP/sales/orders/part-0.parquet"]
    service = drive.service(drive.access_token("someone@example.com"))
    listed = shared_drive_files(service, shared, q="name = 'part-0.parquet'", fields="files(driveId,md5Checksum)")
    assert listed == [{"driveId": shared, "md5Checksum": hashlib.md5(data).hexdigest()}]


def test_racing_creators_of_one_name_leave_one_file(drive: DriveApiServer) -> None:
    folder = new_folder(drive)
    racers = [DriveDestination("t", oauth_settings(drive, folder)) for _ in range(3)]
    data = b"same report\n" * 1000
    results = together(*[lambda d=d: put(d, "daily/report.csv", data) for d in racers])
    files = list(racers[0].list(""))
    assert [(f.path, f.sha1) for f in files] == [("daily/report.csv", hashlib.sha1(data).hexdigest())]
    assert {r.remote_id for r in results if isinstance(r, PutResult)} == {files[0].remote_id}  # all name the kept one
