"""Direct uploads, preflight, versions and downloads."""

from __future__ import annotations

import io
import os

import pytest
import requests
from box_sdk_gen import BoxAPIError, BoxClient
from box_sdk_gen.managers.uploads import (
    PreflightFileUploadCheckParent,
    UploadFileVersionAttributes,
    UploadWithPreflightCheckAttributes,
    UploadWithPreflightCheckAttributesParentField,
)
from box_sdk_gen.schemas.folder_full import FolderFull

from devstack.boxapi import BoxApiServer
from tests.boxapi.conftest import sha1_hex, upload


def test_upload_returns_the_file_with_its_sha1(client: BoxClient, folder: FolderFull) -> None:
    data = os.urandom(5000)
    file = upload(client, folder.id, "report.csv", data, content_md_5=sha1_hex(data))
    assert file.type == "file"
    assert file.sha_1 == sha1_hex(data) == file.file_version.sha_1
    assert file.size == len(data)
    assert file.parent.id == folder.id
    assert [e.id for e in file.path_collection.entries] == ["0", folder.id]
    fetched = client.files.get_file_by_id(file.id)
    assert (fetched.name, fetched.sha_1, fetched.size, fetched.etag) == ("report.csv", sha1_hex(data), 5000, "0")


def test_content_md5_mismatch_is_400_bad_digest(client: BoxClient, folder: FolderFull) -> None:
    with pytest.raises(BoxAPIError) as mismatch:
        upload(client, folder.id, "x.bin", b"payload", content_md_5=sha1_hex(b"something else"))
    assert mismatch.value.response_info.status_code == 400
    assert mismatch.value.response_info.code == "bad_digest"
    assert client.folders.get_folder_items(folder.id).total_count == 0


def test_upload_name_conflict_gives_the_existing_file(client: BoxClient, folder: FolderFull) -> None:
    first = upload(client, folder.id, "same.txt", b"one")
    with pytest.raises(BoxAPIError) as conflict:
        upload(client, folder.id, "SAME.txt", b"two")
    info = conflict.value.response_info
    assert (info.status_code, info.code) == (409, "item_name_in_use")
    # For uploads Box sends the conflicting item as an object, not a list.
    assert info.context_info["conflicts"]["id"] == first.id
    assert info.context_info["conflicts"]["sha1"] == sha1_hex(b"one")


def test_preflight_ok_then_conflict(client: BoxClient, folder: FolderFull) -> None:
    parent = PreflightFileUploadCheckParent(id=folder.id)
    ok = client.uploads.preflight_file_upload_check(name="new.txt", size=10, parent=parent)
    assert ok.upload_url.startswith(client.network_session.base_urls.upload_url + "/2.0/files/content")
    existing = upload(client, folder.id, "new.txt", b"0123456789")
    with pytest.raises(BoxAPIError) as conflict:
        client.uploads.preflight_file_upload_check(name="new.txt", size=10, parent=parent)
    assert conflict.value.response_info.status_code == 409
    assert conflict.value.response_info.context_info["conflicts"]["id"] == existing.id
    with pytest.raises(BoxAPIError) as bad_name:
        client.uploads.preflight_file_upload_check(name="a/b", size=10, parent=parent)
    assert bad_name.value.response_info.status_code == 400
    with pytest.raises(BoxAPIError) as bad_size:
        client.uploads.preflight_file_upload_check(name="ok.txt", size=-1, parent=parent)
    assert bad_size.value.response_info.status_code == 400


def test_upload_with_preflight_check_uses_the_returned_url(client: BoxClient, folder: FolderFull) -> None:
    attributes = UploadWithPreflightCheckAttributes(
        name="checked.txt", size=4, parent=UploadWithPreflightCheckAttributesParentField(id=folder.id)
    )
    files = client.uploads.upload_with_preflight_check(attributes, io.BytesIO(b"abcd"))
    assert files.entries[0].sha_1 == sha1_hex(b"abcd")


def test_new_version_and_version_list(client: BoxClient, folder: FolderFull) -> None:
    first = upload(client, folder.id, "doc.txt", b"version one")
    updated = client.uploads.upload_file_version(
        first.id, UploadFileVersionAttributes(name="doc.txt"), io.BytesIO(b"version two!")
    ).entries[0]
    assert updated.id == first.id
    assert updated.sha_1 == sha1_hex(b"version two!")
    assert updated.file_version.id != first.file_version.id
    assert updated.etag == "1"
    versions = client.file_versions.get_file_versions(first.id)
    assert versions.total_count == 1  # past versions only, like Box
    assert versions.entries[0].id == first.file_version.id
    assert versions.entries[0].sha_1 == sha1_hex(b"version one")
    assert client.downloads.download_file(first.id).read() == b"version two!"
    old = client.downloads.download_file(first.id, version=first.file_version.id).read()
    assert old == b"version one"


def test_download_with_range_and_redirect(box: BoxApiServer, client: BoxClient, folder: FolderFull) -> None:
    data = bytes(range(256)) * 40
    file = upload(client, folder.id, "bytes.bin", data)
    assert client.downloads.download_file(file.id).read() == data
    assert client.downloads.download_file(file.id, range="bytes=10-19").read() == data[10:20]
    link = client.downloads.get_download_file_url(file.id)
    assert link.startswith(box.base_url + "/dl/")
    assert requests.get(link, timeout=10).content == data  # the link needs no token, like dl.boxcloud.com
    tampered = link.replace("/download", "x/download")
    assert requests.get(tampered, timeout=10).status_code == 403


def test_delete_file(client: BoxClient, folder: FolderFull) -> None:
    file = upload(client, folder.id, "gone.txt", b"bye")
    client.files.delete_file_by_id(file.id)
    with pytest.raises(BoxAPIError) as missing:
        client.files.get_file_by_id(file.id)
    assert missing.value.response_info.status_code == 404
    assert missing.value.response_info.context_info["errors"][0]["name"] == "file"


def test_attributes_must_come_before_the_file(box: BoxApiServer, folder: FolderFull) -> None:
    boundary = "XyZ"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\nbytes\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="attributes"\r\n\r\n'
        f'{{"name": "late.txt", "parent": {{"id": "{folder.id}"}}}}\r\n--{boundary}--\r\n'
    ).encode()
    response = requests.post(
        f"{box.upload_url}/2.0/files/content",
        data=body,
        headers={"Authorization": f"Bearer {box.token}", "Content-Type": f"multipart/form-data; boundary={boundary}"},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["code"] == "metadata_after_file_contents"
