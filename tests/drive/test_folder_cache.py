"""Folders the destination knows that change behind its back: a cached folder deleted or
trashed by another instance or an operator, and a folder_id inside a Shared Drive configured
without shared_drive_id."""

from __future__ import annotations

import io

import pytest

from devstack.driveapi import DriveApiServer
from shared.destinations.drive.destination import DriveDestination
from shared.errors import PermanentError
from tests.drive.support import USER, new_folder, new_shared_drive, oauth_settings, shared_drive_files

FOLDER = "application/vnd.google-apps.folder"


def put(dest: DriveDestination, path: str, data: bytes, **options: str) -> str:
    return dest.put_resumable(path, io.BytesIO(data), len(data), **options).status  # type: ignore[union-attr,arg-type]


def trash_after_a_put(drive: DriveApiServer, first: str, folder: str | None) -> tuple[str, DriveDestination, str]:
    """A new root folder, a warm destination that put ``first`` under it, and the id of the
    folder at ``folder`` (None: the root) once trashed as in the Drive UI."""
    root = new_folder(drive)
    warm = DriveDestination("t", oauth_settings(drive, root))
    assert put(warm, first, b"1") == "uploaded"
    trashed = root if folder is None else warm.folders.lookup(folder)
    assert trashed is not None
    drive.service(drive.access_token(USER)).files().update(fileId=trashed, body={"trashed": True}).execute()
    return root, warm, trashed


def test_a_cached_folder_deleted_elsewhere_is_created_again(drive: DriveApiServer) -> None:
    """The warm instance's cached id of ``d`` answers 404 once another instance deleted it:
    the put forgets the cache, creates ``d`` again and delivers (before: DriveNotFound, permanent,
    on every later put of that instance)."""
    root = new_folder(drive)
    warm = DriveDestination("t", oauth_settings(drive, root))
    other = DriveDestination("t", oauth_settings(drive, root))
    assert put(warm, "d/one.bin", b"1") == "uploaded"
    assert other.delete_folder("d")
    assert put(warm, "d/two.bin", b"2") == "uploaded"
    assert put(warm, "d/three.bin", b"3") == "uploaded"
    cold = DriveDestination("t", oauth_settings(drive, root))
    assert [f.path for f in cold.list("")] == ["d/three.bin", "d/two.bin"]


def test_a_cached_folder_trashed_in_the_drive_ui_is_not_delivered_into(drive: DriveApiServer) -> None:
    """Trash answers no 404: the put checks the cached folder and, finding it trashed, delivers
    into a new ``d`` that other instances see (before: into the trashed folder, invisible)."""
    root, warm, trashed = trash_after_a_put(drive, "d/one.bin", "d")
    assert put(warm, "d/two.bin", b"2") == "uploaded"
    cold = DriveDestination("t", oauth_settings(drive, root))
    found = cold.stat("d/two.bin")
    assert found is not None
    service = drive.service(drive.access_token(USER))
    parents = service.files().get(fileId=found.remote_id, fields="parents").execute()["parents"]
    assert parents != [trashed]
    assert [f.path for f in cold.list("")] == ["d/two.bin"]


def test_a_cached_folder_inside_a_folder_trashed_in_the_drive_ui_is_not_delivered_into(drive: DriveApiServer) -> None:
    """Trashing ``a`` puts ``a/b`` in the trash too (no 404, and ``b`` itself not explicitly
    trashed): the put into the cached ``a/b`` goes to a live ``a/b`` instead."""
    root, warm, _ = trash_after_a_put(drive, "a/b/one.bin", "a")
    assert put(warm, "a/b/two.bin", b"2") == "uploaded"
    cold = DriveDestination("t", oauth_settings(drive, root))
    assert [f.path for f in cold.list("")] == ["a/b/two.bin"]


@pytest.mark.parametrize("path", ["top.bin", "d/deep.bin"])
def test_a_configured_folder_in_the_trash_is_a_permanent_error(drive: DriveApiServer, path: str) -> None:
    """folder_id trashed in the Drive UI: every file put under it would vanish with it, and
    verify would find nothing, heal, and put again. The put says so instead, once (before: each
    put answered ``uploaded`` into the trash)."""
    root, warm, _ = trash_after_a_put(drive, "d/first.bin", None)
    with pytest.raises(PermanentError, match=rf"folder_id '{root}' is in the trash"):
        put(warm, path, b"2")


def test_a_folder_in_a_shared_drive_works_without_shared_drive_id(drive: DriveApiServer) -> None:
    """folder_id alone, inside a Shared Drive: lookups find what earlier puts made (before: every
    listing came back empty, so each put made another ``x`` folder and another file)."""
    shared = new_shared_drive(drive)
    service = drive.service(drive.access_token(USER))
    body = {"name": "reports", "mimeType": FOLDER, "parents": [shared]}
    reports = service.files().create(body=body, fields="id", supportsAllDrives=True).execute()["id"]
    sha1 = "a9993e364706816aba3e25717850c26c9cd0d89d"  # of b"abc"
    for status in ("uploaded", "unchanged"):
        dest = DriveDestination("t", oauth_settings(drive, reports))  # a cold instance each time
        assert put(dest, "x/f.bin", b"abc", sha1=sha1) == status
        assert dest.stat("x/f.bin") is not None
        assert [f.path for f in dest.list("")] == ["x/f.bin"]
    held = shared_drive_files(service, shared, fields="files(name,mimeType)")
    assert sorted(f["name"] for f in held) == ["f.bin", "reports", "x"]
