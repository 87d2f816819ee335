"""Drive may keep only part of a chunk and answer 308 with a shorter ``Range``; its resumable
protocol says to continue after the last byte it kept. The local Drive server does so on a
``keep_part`` fault (devstack/driveapi/faults.py)."""

from __future__ import annotations

import hashlib
import io
import os

from devstack.driveapi import DriveApiServer
from shared.destinations.base import PutResult
from shared.destinations.drive.destination import DriveDestination
from tests.drive.support import new_folder, oauth_settings

GRANULE = 256 * 1024


def test_the_rest_of_a_partly_kept_chunk_is_sent(drive: DriveApiServer) -> None:
    """Before: TransientError "Drive holds X bytes, expected Y" and the upload began again."""
    settings = oauth_settings(drive, new_folder(drive), chunk_size_bytes=2 * GRANULE)
    dest = DriveDestination("t", settings)
    drive.add_fault("upload.chunk", "keep_part", keep_bytes=GRANULE, skip=1)  # the second chunk: half kept
    data = os.urandom(4 * 2 * GRANULE + 5)
    outcome = dest.put_resumable("p/big.bin", io.BytesIO(data), len(data))
    assert isinstance(outcome, PutResult) and outcome.status == "uploaded"
    assert outcome.sha1 == hashlib.sha1(data).hexdigest()
    chunk_puts = sum(n for key, n in drive.statuses().items() if key.startswith("upload.chunk "))
    assert chunk_puts == 6, drive.statuses()  # five chunks plus the rest of the second: nothing sent twice
    assert dest.open("p/big.bin").read() == data
    assert not [s for s in drive.sessions() if not s["done"]]
