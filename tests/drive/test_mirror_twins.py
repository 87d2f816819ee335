"""A mirrored object held twice on Drive (two files of one name side by side, which Drive
allows): the reconcile's result is a mismatch naming both copies, not in_sync on whichever copy
the listing gave first (shared/mirror/reconcile.py on the verify engine's ``duplicates``)."""

from __future__ import annotations

import io
import uuid

from googleapiclient.http import MediaIoBaseUpload

from devstack.driveapi import DriveApiServer
from devstack.state import StackInfo
from shared.config.buckets import BucketMirror
from shared.destinations.drive.destination import DriveDestination
from shared.gcp import clients, gcs
from shared.ids import DestinationId
from shared.mirror.reconcile import compare_bucket, result_for
from tests.drive.support import USER, new_folder, oauth_settings

LIVE = b"the object's bytes"


def test_an_object_held_twice_on_drive_is_a_mismatch(drive: DriveApiServer, bare_stack_env: StackInfo) -> None:
    bucket = f"twins-{uuid.uuid4().hex[:8]}"
    clients.storage_client().create_bucket(bucket)
    gcs.write(bucket, "a.txt", LIVE)
    mirror = BucketMirror.model_validate({"name": bucket, "delete": "keep"})
    dest = DriveDestination("t", oauth_settings(drive, new_folder(drive)))
    dest.put(f"{mirror.folder}/a.txt", io.BytesIO(LIVE), len(LIVE))
    alone = compare_bucket(mirror, gcs.list_prefix(bucket, ""), dest, download_hashes=True)
    assert result_for(mirror, DestinationId.parse("drive:t"), alone, (), ()).status == "in_sync"

    stale = b"stale"  # a second file of the same name, beside the first
    media = MediaIoBaseUpload(io.BytesIO(stale), mimetype="application/octet-stream")
    body = {"name": "a.txt", "parents": [dest.folders.lookup(mirror.folder)]}
    drive.service(drive.access_token(USER)).files().create(body=body, media_body=media, fields="id").execute()

    twice = compare_bucket(mirror, gcs.list_prefix(bucket, ""), dest, download_hashes=True)
    result = result_for(mirror, DestinationId.parse("drive:t"), twice, (), ())
    assert result.status == "mismatch"  # before: in_sync, its reason naming the twin
    assert "held more than once" in (result.reason or "") and f"{len(stale)} bytes" in (result.reason or "")
