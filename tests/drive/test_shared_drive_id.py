"""A ``shared_drive_id`` naming another drive than the one ``folder_id`` is in. Before: every
listing asked that other drive (``corpora=drive&driveId=``) and found nothing, while creates
and uploads still landed in ``folder_id``: each put made another copy, verify saw none."""

from __future__ import annotations

import io

import pytest

from devstack.driveapi import DriveApiServer
from shared.destinations.drive.destination import DriveDestination
from shared.errors import ConfigError
from tests.drive.support import new_folder, new_shared_drive, oauth_settings, service_account_settings


def test_a_shared_drive_id_of_another_drive_is_refused_naming_the_right_one(drive: DriveApiServer) -> None:
    real, other = new_shared_drive(drive), new_shared_drive(drive)
    folder = new_folder(drive, parent=real)
    wrong = service_account_settings(drive, other, folder_id=folder)
    dest = DriveDestination("team", wrong)
    expected = (
        rf"destinations\.drive\.team\.shared_drive_id: '{other}' is not the drive holding folder_id "
        rf"'{folder}': expected the folder's own drive, which is Shared Drive '{real}'"
    )
    with pytest.raises(ConfigError, match=expected):
        dest.put("a/f.txt", io.BytesIO(b"same bytes"), 10)
    drive.clear_requests()
    with pytest.raises(ConfigError, match=expected):
        dest.put("a/f.txt", io.BytesIO(b"same bytes"), 10)
    assert "files.get" not in drive.request_counts()  # the instance asked once
    right = DriveDestination("team", wrong.model_copy(update={"shared_drive_id": real}))
    assert list(right.list("")) == []  # nothing was created by the refused puts
    assert right.put("a/f.txt", io.BytesIO(b"same bytes"), 10).status == "uploaded"


def test_a_shared_drive_id_for_a_folder_in_my_drive_is_refused(drive: DriveApiServer) -> None:
    shared = new_shared_drive(drive)
    mine = oauth_settings(drive, new_folder(drive), shared_drive_id=shared)
    with pytest.raises(ConfigError, match=r"\.shared_drive_id: .* which is My Drive; leave it out"):
        DriveDestination("reports", mine).put("f.txt", io.BytesIO(b"x"), 1)
