"""Drive keeps two files of one name in one folder (and counts names differing only in case as
one, ``folds_case``): verify names them and is not in sync, instead of letting one copy stand
for both (a restore may read the other). Real Drive API server (tests/driveapi)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io

import pytest
from googleapiclient.http import MediaIoBaseUpload

from devstack.driveapi import DriveApiServer
from shared.destinations.drive.destination import DriveDestination
from shared.layout import RunFolder, default_file_name, remote_folder
from shared.messages import Source
from shared.verify.engine import compare
from tests.drive.conftest import drive, drive_server  # noqa: F401
from tests.drive.support import USER, new_folder, oauth_settings
from tests.run_folders import run_manifest

NAME = "orders_20250108-000000000000.parquet"
GOOD = b"PAR1" + b"a" * 3000
STALE = b"PAR1" + b"Z" * 10


@pytest.mark.parametrize("twin_name", [NAME, NAME.upper().replace(".PARQUET", ".parquet")])
def test_a_file_held_twice_on_drive_is_named_and_not_in_sync(
    drive: DriveApiServer,  # noqa: F811
    twin_name: str,
) -> None:
    dest = DriveDestination("t", oauth_settings(drive, new_folder(drive)))
    source = Source(mode="table", project="p", dataset="sales", table="orders")
    run = RunFolder("exports", source, dt.date(2025, 1, 8), "r1")
    manifest = run_manifest("b", run, {NAME: GOOD}, {NAME: 1}, ("drive:t",))
    folder = remote_folder(dest.abilities.layout, run, default_file_name("orders", "PARQUET"))
    dest.mkdirs(folder.path)
    service = drive.service(drive.access_token(USER))
    for name, data in ((twin_name, STALE), (NAME, GOOD)):
        media = MediaIoBaseUpload(io.BytesIO(data), mimetype="application/octet-stream")
        body = {"name": name, "parents": [dest.folders.lookup(folder.path)]}
        service.files().create(body=body, media_body=media, fields="id").execute()

    comparison = compare(manifest, dest, folder, source_sha1=lambda f: hashlib.sha1(GOOD).hexdigest())
    assert not comparison.in_sync
    assert comparison.duplicates == tuple(sorted({NAME, twin_name}))
    assert f"2 copies: {len(STALE)} bytes, {len(GOOD)} bytes" in comparison.details[NAME]
    assert "held more than once" in comparison.summary() and str(len(STALE)) in comparison.summary()
    assert comparison.repairable == ()  # a re-delivery would write one of them: no self-heal loop
