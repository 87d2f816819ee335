"""Fault injection through the admin API, seen through the SDK's retries."""

from __future__ import annotations

import io

import pytest
import requests
from box_sdk_gen import BoxClient, BoxDeveloperTokenAuth, BoxSDKError
from box_sdk_gen.networking.network import NetworkSession
from box_sdk_gen.networking.retries import BoxRetryStrategy
from box_sdk_gen.schemas.folder_full import FolderFull

from devstack.boxapi import AdminError, BoxApiServer
from tests.boxapi.conftest import BIG_SIZE as SIZE
from tests.boxapi.conftest import chunks, digest, sha1_hex, upload


@pytest.fixture
def quick_client(box: BoxApiServer) -> BoxClient:
    """The SDK with its default retry rules but millisecond backoff.

    box-sdk-gen 1.17 never sees Box's lower-case ``retry-after`` (it looks the header up
    case-sensitively), so it always backs off exponentially: 1-3 s, 2-6 s, ... by default.
    """
    session = NetworkSession(base_urls=box.base_urls(), retry_strategy=BoxRetryStrategy(retry_base_interval=0.001))
    return BoxClient(auth=BoxDeveloperTokenAuth(token=box.token), network_session=session)


def test_429_carries_retry_after_and_the_sdk_retries(box: BoxApiServer, quick_client: BoxClient, folder: FolderFull):
    box.add_fault("get_folder", "rate_limit", count=1, retry_after=2)
    raw = requests.get(f"{box.base_url}/2.0/folders/0", headers={"Authorization": f"Bearer {box.token}"}, timeout=10)
    assert raw.status_code == 429
    assert raw.headers["Retry-After"] == "2"
    assert raw.json()["code"] == "rate_limit_exceeded"
    box.add_fault("get_folder", "rate_limit", count=2, retry_after=0)
    box.clear_requests()
    assert quick_client.folders.get_folder_by_id(folder.id).id == folder.id
    assert box.requests("get_folder")["statuses"]["get_folder"] == {"429": 2, "200": 1}
    assert box.faults() == []


def test_5xx_on_upload_is_retried_without_a_duplicate(box: BoxApiServer, quick_client: BoxClient, folder: FolderFull):
    box.add_fault("upload_file", "error", status=503, count=2)
    box.clear_requests()
    file = upload(quick_client, folder.id, "retried.txt", b"once")
    assert file.sha_1 == sha1_hex(b"once")
    assert box.requests("upload_file")["statuses"]["upload_file"] == {"503": 2, "201": 1}
    assert quick_client.folders.get_folder_items(folder.id).total_count == 1


def test_any_operation_and_skip(box: BoxApiServer, quick_client: BoxClient) -> None:
    box.add_fault("any", "error", status=500, skip=1, count=1)
    quick_client.users.get_user_me()  # let through (skip)
    box.clear_requests()
    quick_client.users.get_user_me()  # 500, then retried
    assert box.requests("get_user_me")["statuses"]["get_user_me"] == {"500": 1, "200": 1}


def test_delay_holds_the_answer(box: BoxApiServer) -> None:
    box.add_fault("get_user_me", "delay", seconds=3)
    with pytest.raises(requests.ReadTimeout):
        requests.get(f"{box.base_url}/2.0/users/me", headers={"Authorization": f"Bearer {box.token}"}, timeout=0.5)
    response = requests.get(
        f"{box.base_url}/2.0/users/me", headers={"Authorization": f"Bearer {box.token}"}, timeout=10
    )
    assert response.status_code == 200


def test_dropped_connection_mid_part(box: BoxApiServer, quick_client: BoxClient, folder: FolderFull, payload: bytes):
    session = quick_client.chunked_uploads.create_file_upload_session(folder.id, SIZE, "dropped.bin")
    (offset, chunk), *_ = chunks(payload, session.part_size)
    url, content_range = session.session_endpoints.upload_part, f"bytes {offset}-{len(chunk) - 1}/{SIZE}"
    box.clear_requests()
    # The SDK retries a broken connection twice; three drops in a row reach the caller.
    box.add_fault("upload_part", "drop", count=3, after_bytes=1024 * 1024)
    with pytest.raises(BoxSDKError):
        quick_client.chunked_uploads.upload_file_part_by_url(url, io.BytesIO(chunk), digest(chunk), content_range)
    # One drop: the SDK's retry goes through and the part is recorded once.
    box.add_fault("upload_part", "drop", count=1, after_bytes=1024 * 1024)
    part = quick_client.chunked_uploads.upload_file_part_by_url(
        url, io.BytesIO(chunk), digest(chunk), content_range
    ).part
    assert (part.offset, part.size) == (0, len(chunk))
    listed = quick_client.chunked_uploads.get_file_upload_session_parts_by_url(session.session_endpoints.list_parts)
    assert [p.offset for p in listed.entries] == [0]
    assert box.requests("upload_part")["statuses"]["upload_part"] == {"0": 4, "200": 1}


def test_big_file_helper_rides_out_rate_limits(
    box: BoxApiServer, client: BoxClient, folder: FolderFull, payload: bytes
):
    box.add_fault("upload_part", "rate_limit", count=2, retry_after=0)
    file = client.chunked_uploads.upload_big_file(io.BytesIO(payload), "limited.bin", SIZE, folder.id)
    assert file.sha_1 == sha1_hex(payload)


def test_admin_rejects_unknown_operations(box: BoxApiServer) -> None:
    with pytest.raises(AdminError, match="unknown operation"):
        box.add_fault("upload_everything", "error")
    with pytest.raises(AdminError, match="unknown action"):
        box.add_fault("commit", "explode")
