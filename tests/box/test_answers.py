"""What Box's answers mean beyond success: a download not ready yet (202), a root folder Box
does not show (404), an upload whose answer was lost after Box stored it, and why a 403 happened."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from devstack.boxapi import BoxApiServer
from offsite.cli import app
from shared.config import BoxDestination as BoxSettings
from shared.destinations.box.destination import BoxDestination
from shared.destinations.box.http import BoxApiError
from shared.errors import ConfigError
from tests.box.support import box_settings, put_one_new_version
from tests.box.test_cli import write_config

MB = 1_000_000
LARGE = 20 * MB + 4_321  # an upload session of three parts
UNKNOWN_FOLDER = "987654321"


@pytest.fixture
def box(settings: BoxSettings) -> Iterator[BoxDestination]:
    dest = BoxDestination(settings)
    yield dest
    dest.http.close()


def statuses(box_server: BoxApiServer, operation: str) -> dict[str, int]:
    return box_server.requests(operation)["statuses"].get(operation, {})


def read_all(box: BoxDestination, path: str) -> bytes:
    stream = box.open(path)
    try:
        return stream.read()
    finally:
        stream.close()


# ---- 202 on a download: the file is not ready yet --------------------------------------------


def test_a_download_box_answers_202_is_asked_again_until_the_content_comes(
    box: BoxDestination, box_server: BoxApiServer
) -> None:
    """open() used to return the empty body of the 202 as the file (mirror retention then failed
    with ShortSource, restore called the manifest not JSON)."""
    data = os.urandom(5000)
    box.put("dl/f.bin", io.BytesIO(data), len(data))
    box_server.clear_requests()
    box_server.add_fault("download_file", "accepted", count=2, retry_after=0.1)
    assert read_all(box, "dl/f.bin") == data
    assert statuses(box_server, "download_file") == {"202": 2, "302": 1}
    assert box_server.faults() == []


def test_a_file_downloaded_right_after_its_upload_waits_until_box_has_it_ready(
    box: BoxDestination, box_server: BoxApiServer
) -> None:
    """The server itself answers 202 + Retry-After for a version younger than download_ready_s."""
    box_server.configure(download_ready_s=2.0)  # the box_root fixture restores the settings
    data = os.urandom(3000)
    box.put("dl/fresh.bin", io.BytesIO(data), len(data))
    box_server.clear_requests()
    assert read_all(box, "dl/fresh.bin") == data
    answered = statuses(box_server, "download_file")
    assert answered.get("202", 0) >= 1 and answered.get("302") == 1


# ---- 404 on the configured root folder ----------------------------------------------------------


def assert_names_the_root(exc: ConfigError) -> None:
    text = str(exc)
    assert "destinations.box.root_folder_id" in text and repr(UNKNOWN_FOLDER) in text
    assert "not shared with the app's service account" in text and "editor" in text


def test_a_root_folder_box_answers_404_for_is_a_config_error_naming_it(box_server: BoxApiServer) -> None:
    """It used to be a StaleFolder TransientError ("the path will be resolved again"), retried
    until dead-lettered for every file."""
    unknown = BoxDestination(box_settings(box_server, UNKNOWN_FOLDER))
    box_server.clear_requests()
    for put_path in ("GCP/bigquery/sales/orders/20250108/r1/f.bin", "top.bin"):
        with pytest.raises(ConfigError) as raised:
            unknown.put(put_path, io.BytesIO(b"x" * 10), 10)
        assert_names_the_root(raised.value)
    assert box_server.request_counts().get("create_folder") == 1  # no retry: forgetting cannot help
    for look in (lambda: list(unknown.list("")), lambda: unknown.stat("a/b.bin"), lambda: unknown.entries("")):
        with pytest.raises(ConfigError) as raised:
            look()
        assert_names_the_root(raised.value)
    unknown.http.close()


def test_box_ls_on_a_root_folder_box_does_not_show_names_the_setting(box_server: BoxApiServer, tmp_path: Path) -> None:
    config = str(write_config(tmp_path, box_server, UNKNOWN_FOLDER))
    listed = CliRunner().invoke(app, ["box", "ls", "GCP", "--config", config])
    assert listed.exit_code == 1
    assert f"destinations.box.root_folder_id: folder {UNKNOWN_FOLDER!r} not found" in listed.stderr


def test_a_root_folder_deleted_after_its_subfolders_were_cached_is_reported(
    box: BoxDestination, box_server: BoxApiServer
) -> None:
    """The cached subfolder is gone (404: forget, resolve again), then so is the root: a ConfigError."""
    root = box.folders.ensure("root-to-delete")
    doomed = BoxDestination(box_settings(box_server, root))
    doomed.put("GCP/a.bin", io.BytesIO(b"a"), 1)
    box.http.call("DELETE", f"{box.http.api}/folders/{root}", what="operator", params={"recursive": "true"}).close()
    with pytest.raises(ConfigError) as raised:
        doomed.put("GCP/b.bin", io.BytesIO(b"b"), 1)
    assert f"destinations.box.root_folder_id: folder {root!r} not found" in str(raised.value)
    doomed.http.close()


# ---- an upload whose answer was lost after Box stored it ----------------------------------------


def test_a_lost_answer_to_a_new_upload_still_reports_uploaded(box: BoxDestination, box_server: BoxApiServer) -> None:
    """The retry gets 409 item_name_in_use and finds its own bytes: that put made the file, so
    its receipt says uploaded (the run's manifest copy publishes no receipt for unchanged)."""
    data = os.urandom(5000)
    box.mkdirs("lost")
    box_server.clear_requests()
    box_server.add_fault("upload_file", "lose_answer", count=1)
    result = box.put("lost/_manifest.json", io.BytesIO(data), len(data))
    assert result.status == "uploaded" and result.sha1 == hashlib.sha1(data).hexdigest()
    assert statuses(box_server, "upload_file") == {"0": 1, "409": 1}
    assert [f.path for f in box.list("lost")] == ["lost/_manifest.json"]


def test_a_lost_answer_to_a_new_version_still_reports_new_version(
    box: BoxDestination, box_server: BoxApiServer
) -> None:
    box.put("lost/v.bin", io.BytesIO(b"old bytes"), 9)
    box_server.add_fault("upload_file_version", "lose_answer", count=1)
    put_one_new_version(box, box_server, "lost/v.bin", b"new bytes, longer than the old")


def test_a_lost_answer_to_a_commit_still_reports_uploaded(box: BoxDestination, box_server: BoxApiServer) -> None:
    """The commit made the file but its answer was lost; the commit sent again is refused (409:
    the name is taken, by that very commit) and the file there has our bytes: uploaded."""
    data = os.urandom(LARGE)
    box_server.add_fault("commit", "lose_answer", count=1)
    box_server.add_fault("commit", "error", status=409, code="item_name_in_use", count=1)  # the next commit
    result = box.put("lost/big.bin", io.BytesIO(data), LARGE)
    assert result.status == "uploaded" and result.sha1 == hashlib.sha1(data).hexdigest()
    assert statuses(box_server, "commit") == {"0": 1, "409": 1}
    assert [f.path for f in box.list("lost")] == ["lost/big.bin"]


# ---- why a 403 happened ---------------------------------------------------------------------------


def test_a_file_over_the_upload_size_limit_says_so_not_access(box: BoxDestination, box_server: BoxApiServer) -> None:
    box_server.configure(max_upload_size=500)
    with pytest.raises(BoxApiError) as raised:
        box.put("big/f.bin", io.BytesIO(b"x" * 1000), 1000)
    text = str(raised.value)
    assert raised.value.code == "file_size_limit_exceeded" and "over the Box account's upload size limit" in text
    assert "lacks access" not in text and "collaborate" not in text


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        ("access_denied_insufficient_permissions", "collaborate it as an editor on the root folder"),
        ("access_denied_item_locked", "locked"),
        ("storage_limit_exceeded", "storage is full"),
    ],
)
def test_a_403_hint_follows_boxs_code(box: BoxDestination, box_server: BoxApiServer, code: str, hint: str) -> None:
    box.mkdirs("forbidden")
    box_server.add_fault("preflight_upload", "error", status=403, code=code, count=1)
    with pytest.raises(BoxApiError) as raised:
        box.put("forbidden/f.bin", io.BytesIO(b"x"), 1)
    assert hint in str(raised.value)
    if code != "access_denied_insufficient_permissions":
        assert "collaborate" not in str(raised.value)
