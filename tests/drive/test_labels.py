"""DriveDestination's Labelled ability on the local Drive server: labels travel as appProperties
with the upload, a file is found by all of them (never by some), a value over Drive's 124-byte
key + value limit is stored and found as its hash, and an unchanged file gets new labels."""

from __future__ import annotations

import io

from devstack.driveapi import DriveApiServer
from shared.destinations.base import Labelled
from shared.destinations.drive.destination import DriveDestination
from tests.drive.support import USER, new_folder, oauth_settings


def test_files_carry_their_labels_and_are_found_by_them(drive: DriveApiServer) -> None:
    dest = DriveDestination("t", oauth_settings(drive, new_folder(drive)))
    assert isinstance(dest, Labelled)
    long_path = "/partner/" + "é" * 80 + "/export.csv"  # 12 + 175 bytes: over the limit
    labels = {"offsite_partner": "acme", "offsite_path": long_path, "offsite_size": "5"}
    assert dest.find_labelled("in/a.csv", labels) is None  # no folder yet
    put = dest.put_labelled("in/a.csv", io.BytesIO(b"hello"), 5, labels)
    assert put.status == "uploaded"

    found = dest.find_labelled("in/renamed-or-not.csv", labels)  # the folder counts, not the name
    assert found is not None and (found.path, found.size, found.remote_id) == ("in/a.csv", 5, put.remote_id)
    assert found.md5 == "5d41402abc4b2a76b9719d911017c592" and found.sha1 == put.sha1
    assert dest.find_labelled("in/a.csv", {**labels, "offsite_size": "6"}) is None
    assert dest.find_labelled("other/a.csv", labels) is None

    stored = drive.service(drive.access_token(USER)).files()
    props = stored.get(fileId=put.remote_id, fields="appProperties").execute()["appProperties"]
    assert props["offsite_partner"] == "acme" and props["offsite_path"].startswith("sha256:")

    relabelled = {**labels, "offsite_size": "5", "offsite_mtime": "1700000000"}
    again = dest.put_labelled("in/a.csv", io.BytesIO(b"hello"), 5, relabelled)
    assert (again.status, again.remote_id) == ("unchanged", put.remote_id)
    refound = dest.find_labelled("in/a.csv", relabelled)
    assert refound is not None and refound.remote_id == put.remote_id
