"""Upload sessions: the SDK's big-file helper and a manual flow with parallel, out-of-order parts."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from box_sdk_gen import BoxAPIError, BoxClient
from box_sdk_gen.schemas.folder_full import FolderFull
from box_sdk_gen.schemas.upload_part import UploadPart
from box_sdk_gen.schemas.upload_session import UploadSession

from devstack.boxapi import BoxApiServer
from tests.boxapi.conftest import BIG_SIZE as SIZE
from tests.boxapi.conftest import chunks, digest, sha1_hex, upload


def put_part(client: BoxClient, session: UploadSession, offset: int, chunk: bytes) -> UploadPart:
    content_range = f"bytes {offset}-{offset + len(chunk) - 1}/{SIZE}"
    return client.chunked_uploads.upload_file_part_by_url(
        session.session_endpoints.upload_part, io.BytesIO(chunk), digest(chunk), content_range
    ).part


def upload_parts_in_parallel(client: BoxClient, session: UploadSession, data: bytes) -> list[UploadPart]:
    pieces = list(reversed(chunks(data, session.part_size)))  # last part first
    with ThreadPoolExecutor(max_workers=3) as pool:
        parts = list(pool.map(lambda piece: put_part(client, session, *piece), pieces))
    return sorted(parts, key=lambda part: part.offset)


def test_upload_big_file_with_the_sdk_helper(box: BoxApiServer, client: BoxClient, folder: FolderFull, payload: bytes):
    box.clear_requests()
    file = client.chunked_uploads.upload_big_file(io.BytesIO(payload), "big.bin", SIZE, folder.id)
    assert file.sha_1 == sha1_hex(payload)
    assert file.size == SIZE
    assert client.downloads.download_file(file.id).read() == payload
    counts = box.request_counts()
    assert counts["upload_part"] == 3
    assert counts["commit"] == 1


def test_session_shape_and_small_files_refused(box: BoxApiServer, client: BoxClient, folder: FolderFull) -> None:
    session = client.chunked_uploads.create_file_upload_session(folder.id, SIZE, "shape.bin")
    assert (session.part_size, session.total_parts, session.num_parts_processed) == (8 * 1024 * 1024, 3, 0)
    endpoints = session.session_endpoints
    base = f"{box.upload_url}/2.0/files/upload_sessions/{session.id}"
    assert (endpoints.upload_part, endpoints.commit, endpoints.list_parts) == (base, base + "/commit", base + "/parts")
    assert session.session_expires_at is not None
    with pytest.raises(BoxAPIError) as small:
        client.chunked_uploads.create_file_upload_session(folder.id, 19_999_999, "small.bin")
    assert (small.value.response_info.status_code, small.value.response_info.code) == (400, "file_size_too_small")


def test_parallel_out_of_order_parts_and_a_202_commit(
    box: BoxApiServer, client: BoxClient, folder: FolderFull, payload: bytes
) -> None:
    session = client.chunked_uploads.create_file_upload_session(folder.id, SIZE, "parallel.bin")
    parts = upload_parts_in_parallel(client, session, payload)
    assert [p.offset for p in parts] == [0, session.part_size, 2 * session.part_size]
    listed = client.chunked_uploads.get_file_upload_session_parts_by_url(session.session_endpoints.list_parts, limit=2)
    assert listed.total_count == 3 and len(listed.entries) == 2
    status = client.chunked_uploads.get_file_upload_session_by_url(session.session_endpoints.status)
    assert status.num_parts_processed == 3
    box.add_fault("commit", "accepted", count=1, retry_after=0)
    box.clear_requests()
    commit_url = session.session_endpoints.commit
    # Box sends "retry-after" in lower case and box-sdk-gen 1.17 looks for "Retry-After",
    # so the SDK does not retry a 202 itself: it returns None and the caller polls.
    assert client.chunked_uploads.create_file_upload_session_commit_by_url(commit_url, parts, digest(payload)) is None
    files = client.chunked_uploads.create_file_upload_session_commit_by_url(commit_url, parts, digest(payload))
    assert files.entries[0].sha_1 == sha1_hex(payload)
    assert box.requests("commit")["statuses"]["commit"] == {"202": 1, "201": 1}
    # Committing a committed session again answers with the same file, never a second one.
    again = client.chunked_uploads.create_file_upload_session_commit_by_url(commit_url, parts, digest(payload))
    assert again.entries[0].id == files.entries[0].id
    assert client.folders.get_folder_items(folder.id).total_count == 1


def test_commit_answers_202_while_processing(box: BoxApiServer, client: BoxClient, folder: FolderFull, payload: bytes):
    box.configure(commit_wait_s=0)
    session = client.chunked_uploads.create_file_upload_session(folder.id, SIZE, "slow.bin")
    parts = upload_parts_in_parallel(client, session, payload)
    response = requests.post(
        session.session_endpoints.commit,
        json={"parts": [p.to_dict() for p in parts]},
        headers={"Authorization": f"Bearer {box.token}", "Digest": digest(payload)},
        timeout=30,
    )
    if response.status_code == 202:  # the usual case: the digest is not finished within 0 s
        assert response.headers["Retry-After"] == "1"
        assert response.content == b""
    else:
        assert response.status_code == 201
    box.configure(commit_wait_s=30)
    files = client.chunked_uploads.create_file_upload_session_commit_by_url(
        session.session_endpoints.commit, parts, digest(payload)
    )
    assert files.entries[0].sha_1 == sha1_hex(payload)
    assert client.folders.get_folder_items(folder.id).total_count == 1


def test_part_checks(client: BoxClient, folder: FolderFull, payload: bytes) -> None:
    session = client.chunked_uploads.create_file_upload_session(folder.id, SIZE, "checks.bin")
    first = payload[: session.part_size]
    url = session.session_endpoints.upload_part
    with pytest.raises(BoxAPIError) as misaligned:
        client.chunked_uploads.upload_file_part_by_url(
            url, io.BytesIO(first[1:]), digest(first[1:]), f"bytes 1-{len(first) - 1}/{SIZE}"
        )
    assert misaligned.value.response_info.status_code == 416
    with pytest.raises(BoxAPIError) as wrong_digest:
        client.chunked_uploads.upload_file_part_by_url(
            url, io.BytesIO(first), digest(b"other"), f"bytes 0-{len(first) - 1}/{SIZE}"
        )
    assert wrong_digest.value.response_info.status_code == 412
    part = put_part(client, session, 0, first)
    assert put_part(client, session, 0, first).part_id == part.part_id  # a retried part is the same part
    changed = bytes([first[0] ^ 1]) + first[1:]
    with pytest.raises(BoxAPIError) as overlap:
        put_part(client, session, 0, changed)
    assert overlap.value.response_info.code == "range_overlaps_existing_part"
    with pytest.raises(BoxAPIError) as incomplete:
        client.chunked_uploads.create_file_upload_session_commit_by_url(
            session.session_endpoints.commit, [part], digest(payload)
        )
    assert incomplete.value.response_info.code == "parts_mismatch"


def test_wrong_whole_file_digest_and_abort(client: BoxClient, folder: FolderFull, payload: bytes) -> None:
    session = client.chunked_uploads.create_file_upload_session(folder.id, SIZE, "aborted.bin")
    parts = upload_parts_in_parallel(client, session, payload)
    with pytest.raises(BoxAPIError) as mismatch:
        client.chunked_uploads.create_file_upload_session_commit_by_url(
            session.session_endpoints.commit, parts, digest(b"x")
        )
    assert (mismatch.value.response_info.status_code, mismatch.value.response_info.code) == (400, "digest_mismatch")
    client.chunked_uploads.delete_file_upload_session_by_url(session.session_endpoints.abort)
    with pytest.raises(BoxAPIError) as gone:
        client.chunked_uploads.get_file_upload_session_by_url(session.session_endpoints.status)
    assert gone.value.response_info.status_code == 404
    assert client.folders.get_folder_items(folder.id).total_count == 0


def test_new_version_through_a_session(client: BoxClient, folder: FolderFull, payload: bytes) -> None:
    original = upload(client, folder.id, "grow.bin", b"small first version")
    session = client.chunked_uploads.create_file_upload_session_for_existing_file(original.id, SIZE)
    parts = upload_parts_in_parallel(client, session, payload)
    files = client.chunked_uploads.create_file_upload_session_commit_by_url(
        session.session_endpoints.commit, parts, digest(payload)
    )
    assert files.entries[0].id == original.id
    assert files.entries[0].sha_1 == sha1_hex(payload)
    assert client.file_versions.get_file_versions(original.id).entries[0].sha_1 == sha1_hex(b"small first version")


def test_name_taken_before_commit(client: BoxClient, folder: FolderFull, payload: bytes) -> None:
    session = client.chunked_uploads.create_file_upload_session(folder.id, SIZE, "race.bin")
    parts = upload_parts_in_parallel(client, session, payload)
    winner = upload(client, folder.id, "race.bin", b"got there first")
    with pytest.raises(BoxAPIError) as conflict:
        client.chunked_uploads.create_file_upload_session_commit_by_url(
            session.session_endpoints.commit, parts, digest(payload)
        )
    assert conflict.value.response_info.status_code == 409
    assert conflict.value.response_info.context_info["conflicts"]["id"] == winner.id
