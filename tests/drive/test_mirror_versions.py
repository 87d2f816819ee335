"""A mirrored bucket's removed copy kept as a version on Drive, which cannot rename: copied to
``_offsite_versions/YYYY-MM-DD/`` (read back, uploaded) and then deleted
(shared/mirror/versions.py), on the local Drive server."""

from __future__ import annotations

import datetime as dt
import hashlib
import io

from devstack.driveapi import DriveApiServer
from shared.config.buckets import BucketMirror
from shared.destinations.drive.destination import DriveDestination
from shared.mirror.versions import Movable, remove_copy
from tests.drive.support import new_folder, oauth_settings


def test_a_removed_copy_is_copied_to_the_dated_folder_then_deleted(drive: DriveApiServer) -> None:
    dest = DriveDestination("t", oauth_settings(drive, new_folder(drive)))
    assert not isinstance(dest, Movable)
    mirror = BucketMirror.model_validate({"name": "my-data", "delete": "mirror", "retention": {"daily": 2}})
    data = b"a deleted object " * 100
    dest.put(f"{mirror.folder}/dir/gone.bin", io.BytesIO(data), len(data))
    dest.put(f"{mirror.folder}/live.txt", io.BytesIO(b"live"), 4)

    when = dt.datetime(2025, 3, 4, 23, 59, tzinfo=dt.UTC)
    remove_copy(mirror, dest, f"{mirror.folder}/dir/gone.bin", now=when)
    remove_copy(mirror, dest, f"{mirror.folder}/dir/gone.bin", now=when)  # a retry: nothing left to move

    listed = {f.path: f.sha1 for f in dest.list(mirror.folder)}
    assert listed == {
        f"{mirror.folder}/_offsite_versions/2025-03-04/dir/gone.bin": hashlib.sha1(data).hexdigest(),
        f"{mirror.folder}/live.txt": hashlib.sha1(b"live").hexdigest(),
    }
