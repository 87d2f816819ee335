"""Folders: create, get, list with offset and marker paging, conflicts, delete."""

from __future__ import annotations

import pytest
import requests
from box_sdk_gen import BoxAPIError, BoxClient
from box_sdk_gen.managers.folders import CreateFolderParent, UpdateFolderByIdParent
from box_sdk_gen.schemas.folder_full import FolderFull

from devstack.boxapi import BoxApiServer
from tests.boxapi.conftest import unique, upload
from tests.threads import together


def test_root_folder_is_all_files(client: BoxClient) -> None:
    root = client.folders.get_folder_by_id("0")
    assert root.id == "0"
    assert root.name == "All Files"
    assert root.parent is None
    assert root.path_collection.total_count == 0


def test_create_and_get_nested_folder(client: BoxClient, folder: FolderFull) -> None:
    child = client.folders.create_folder("child", CreateFolderParent(id=folder.id))
    assert child.type == "folder"
    assert child.parent.id == folder.id
    assert [e.id for e in child.path_collection.entries] == ["0", folder.id]
    assert child.item_collection.total_count == 0
    again = client.folders.get_folder_by_id(child.id)
    assert (again.id, again.name, again.etag, again.size) == (child.id, "child", "0", 0)


def test_name_conflict_names_the_existing_folder(client: BoxClient, folder: FolderFull) -> None:
    existing = client.folders.create_folder("Reports", CreateFolderParent(id=folder.id))
    with pytest.raises(BoxAPIError) as conflict:
        client.folders.create_folder("reports", CreateFolderParent(id=folder.id))  # case-insensitive, like Box
    info = conflict.value.response_info
    assert info.status_code == 409
    assert info.code == "item_name_in_use"
    assert info.body["type"] == "error" and info.body["request_id"]
    assert info.context_info["conflicts"][0]["id"] == existing.id
    assert info.context_info["conflicts"][0]["type"] == "folder"


def test_concurrent_creators_agree_on_one_folder(box: BoxApiServer, folder: FolderFull) -> None:
    def create() -> tuple[int, str]:
        response = requests.post(
            f"{box.base_url}/2.0/folders",
            json={"name": "same", "parent": {"id": folder.id}},
            headers={"Authorization": f"Bearer {box.token}"},
            timeout=30,
        )
        body = response.json()
        found = body["id"] if response.status_code == 201 else body["context_info"]["conflicts"][0]["id"]
        return response.status_code, found

    results = together(*[create] * 8)
    assert sorted(status for status, _ in results) == [201] + [409] * 7
    assert len({found for _, found in results}) == 1


def test_invalid_names_and_unknown_parent(client: BoxClient, folder: FolderFull) -> None:
    for name, code in [
        ("a/b", "item_name_invalid"),
        ("trailing ", "item_name_invalid"),
        ("x" * 256, "item_name_too_long"),
    ]:
        with pytest.raises(BoxAPIError) as bad:
            client.folders.create_folder(name, CreateFolderParent(id=folder.id))
        assert (bad.value.response_info.status_code, bad.value.response_info.code) == (400, code)
    with pytest.raises(BoxAPIError) as missing:
        client.folders.create_folder("x", CreateFolderParent(id="987654321"))
    assert missing.value.response_info.status_code == 404
    assert missing.value.response_info.code == "not_found"


def test_items_offset_paging(client: BoxClient, folder: FolderFull) -> None:
    for name in ["b", "a", "c"]:
        client.folders.create_folder(f"dir-{name}", CreateFolderParent(id=folder.id))
    for name in ["z.txt", "y.txt", "x.txt", "w.txt"]:
        upload(client, folder.id, name, name.encode())
    pages, offset = [], 0
    while True:
        page = client.folders.get_folder_items(folder.id, offset=offset, limit=3)
        assert page.total_count == 7
        pages.append([(e.type.value, e.name) for e in page.entries])
        offset += len(page.entries)
        if offset >= page.total_count:
            break
    assert pages == [
        [("folder", "dir-a"), ("folder", "dir-b"), ("folder", "dir-c")],
        [("file", "w.txt"), ("file", "x.txt"), ("file", "y.txt")],
        [("file", "z.txt")],
    ]
    files = client.folders.get_folder_items(folder.id, offset=3, limit=1).entries
    assert files[0].sha_1 and files[0].file_version.id


def test_items_marker_paging(client: BoxClient, folder: FolderFull) -> None:
    names = [f"f{i:02d}" for i in range(7)]
    for name in names:
        client.folders.create_folder(name, CreateFolderParent(id=folder.id))
    seen, marker = [], None
    while True:
        page = client.folders.get_folder_items(folder.id, usemarker=True, marker=marker, limit=3)
        assert page.total_count is None and page.limit == 3
        seen += [e.name for e in page.entries]
        marker = page.next_marker
        if not marker:
            break
    assert seen == names


def test_items_with_fields(box: BoxApiServer, client: BoxClient, folder: FolderFull) -> None:
    upload(client, folder.id, "data.bin", b"12345")
    response = requests.get(
        f"{box.base_url}/2.0/folders/{folder.id}/items",
        params={"fields": "name,size,sha1", "usemarker": "true"},
        headers={"Authorization": f"Bearer {box.token}"},
        timeout=10,
    )
    entry = response.json()["entries"][0]
    assert entry["size"] == 5 and entry["name"] == "data.bin" and "path_collection" not in entry
    assert response.json()["next_marker"] is None


def test_delete_needs_recursive_when_not_empty(client: BoxClient, folder: FolderFull) -> None:
    inner = client.folders.create_folder(unique("inner"), CreateFolderParent(id=folder.id))
    upload(client, inner.id, "keep.txt", b"x")
    with pytest.raises(BoxAPIError) as not_empty:
        client.folders.delete_folder_by_id(folder.id)
    assert (not_empty.value.response_info.status_code, not_empty.value.response_info.code) == (400, "folder_not_empty")
    client.folders.delete_folder_by_id(folder.id, recursive=True)
    for gone in (folder.id, inner.id):
        with pytest.raises(BoxAPIError) as missing:
            client.folders.get_folder_by_id(gone)
        assert missing.value.response_info.status_code == 404


def test_non_numeric_id_is_405(box: BoxApiServer) -> None:
    response = requests.get(
        f"{box.base_url}/2.0/folders/abc", headers={"Authorization": f"Bearer {box.token}"}, timeout=10
    )
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


def test_rename_and_move_carry_the_subtree(client: BoxClient, folder: FolderFull) -> None:
    dated = client.folders.create_folder("20250108", CreateFolderParent(id=folder.id))
    inner = client.folders.create_folder("r1", CreateFolderParent(id=dated.id))
    renamed = client.folders.update_folder_by_id(dated.id, name="20250108-old")
    assert (renamed.id, renamed.name, renamed.etag) == (dated.id, "20250108-old", "1")
    assert [e.name for e in client.folders.get_folder_items(folder.id).entries] == ["20250108-old"]
    assert [e.name for e in client.folders.get_folder_by_id(inner.id).path_collection.entries][-1] == "20250108-old"
    other = client.folders.create_folder("other", CreateFolderParent(id=folder.id))
    moved = client.folders.update_folder_by_id(dated.id, parent=UpdateFolderByIdParent(id=other.id))
    assert moved.parent.id == other.id
    assert [e.id for e in client.folders.get_folder_by_id(inner.id).path_collection.entries] == [
        "0",
        folder.id,
        other.id,
        dated.id,
    ]


def test_rename_onto_a_taken_name_or_move_into_itself_is_refused(client: BoxClient, folder: FolderFull) -> None:
    first = client.folders.create_folder("a", CreateFolderParent(id=folder.id))
    taken = client.folders.create_folder("B", CreateFolderParent(id=folder.id))
    child = client.folders.create_folder("c", CreateFolderParent(id=first.id))
    with pytest.raises(BoxAPIError) as conflict:
        client.folders.update_folder_by_id(first.id, name="b")  # case-insensitive, like Box
    assert conflict.value.response_info.status_code == 409
    assert conflict.value.response_info.context_info["conflicts"][0]["id"] == taken.id
    with pytest.raises(BoxAPIError) as cycle:
        client.folders.update_folder_by_id(first.id, parent=UpdateFolderByIdParent(id=child.id))
    assert cycle.value.response_info.status_code == 400
    with pytest.raises(BoxAPIError) as stale:
        client.folders.update_folder_by_id(first.id, name="d", if_match="99")
    assert stale.value.response_info.status_code == 412
    assert client.folders.get_folder_by_id(first.id).name == "a"
