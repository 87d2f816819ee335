"""A resumable session gone mid-upload (Drive: 404; expired or cancelled) cannot come back:
the put gives up at once, as a TransientError, and the next try (with a fresh source) starts
a new session. Before: the chunk was retried in-process eight times, ~45 s of 404s."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from devstack.driveapi import DriveApiServer
from shared.destinations.drive.destination import DriveDestination
from shared.errors import TransientError
from tests.drive.support import new_folder, oauth_settings

CHUNK = 256 * 1024


def test_a_session_gone_mid_upload_is_not_retried_and_the_next_try_delivers(drive: DriveApiServer) -> None:
    dest = DriveDestination("t", oauth_settings(drive, new_folder(drive), chunk_size_bytes=CHUNK))
    data = os.urandom(3 * CHUNK + 5)
    drive.add_fault("upload.chunk", "expire", skip=1)  # the session expires before the second chunk
    with pytest.raises(TransientError, match="the upload session is gone"):
        dest.put("g/f.bin", io.BytesIO(data), len(data))
    assert drive.statuses()["upload.chunk 404"] == 1, drive.statuses()
    assert dest.stat("g/f.bin") is None  # nothing partial is visible
    result = dest.put("g/f.bin", io.BytesIO(data), len(data))  # the delivery's next try
    assert result.status == "uploaded" and result.sha1 == hashlib.sha1(data).hexdigest()
    assert [(f.path, f.size) for f in dest.list("g")] == [("g/f.bin", len(data))]
    assert dest.open("g/f.bin").read() == data
