"""Restarts keep files, folders, tokens and open upload sessions; stopping leaves nothing behind."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from box_sdk_gen.managers.folders import CreateFolderParent

from devstack.boxapi import BoxApiServer
from devstack.boxapi.server import wait_gone
from tests.boxapi.conftest import chunks, digest, sha1_hex, upload


def test_restart_keeps_content_and_sessions(tmp_path: Path, payload: bytes) -> None:
    data_dir = tmp_path / "box"
    with BoxApiServer(data_dir) as first:
        client = first.client()
        folder = client.folders.create_folder("kept", CreateFolderParent(id="0"))
        file = upload(client, folder.id, "kept.txt", b"still here")
        session = client.chunked_uploads.create_file_upload_session(folder.id, len(payload), "resumed.bin")
        pieces = chunks(payload, session.part_size)
        offset, chunk = pieces[0]
        content_range = f"bytes {offset}-{offset + len(chunk) - 1}/{len(payload)}"
        client.chunked_uploads.upload_file_part(session.id, io.BytesIO(chunk), digest(chunk), content_range)
        pid = first.pid
    assert pid is not None and wait_gone(pid)

    with BoxApiServer(data_dir) as second:
        client = second.client()
        assert client.files.get_file_by_id(file.id).sha_1 == sha1_hex(b"still here")
        assert client.downloads.download_file(file.id).read() == b"still here"
        assert [e.name for e in client.folders.get_folder_items(folder.id).entries] == ["kept.txt"]
        # The session goes on where it stopped, on the new port.
        for offset, chunk in pieces[1:]:
            content_range = f"bytes {offset}-{offset + len(chunk) - 1}/{len(payload)}"
            client.chunked_uploads.upload_file_part(session.id, io.BytesIO(chunk), digest(chunk), content_range)
        parts = client.chunked_uploads.get_file_upload_session_parts(session.id).entries
        committed = client.chunked_uploads.create_file_upload_session_commit(session.id, parts, digest(payload))
        assert committed.entries[0].sha_1 == sha1_hex(payload)


def test_one_server_per_data_dir(tmp_path: Path) -> None:
    with BoxApiServer(tmp_path / "box"), pytest.raises(RuntimeError, match="did not start"):
        BoxApiServer(tmp_path / "box", start_timeout_s=10).start()
