"""Box's JSON representations of users, folders, files, versions and collections.

Field sets follow the API reference: the *mini* variant inside collections and conflicts,
the *standard* variant from GET/POST on the item itself; ``fields=`` selects the mini
fields plus the ones asked for (Box's documented behaviour).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

ROOT_ID = 0
ROOT_NAME = "All Files"

FOLDER_MINI_KEYS = ("type", "id", "sequence_id", "etag", "name")
FILE_MINI_KEYS = ("type", "id", "file_version", "sequence_id", "etag", "sha1", "name")

UserLookup = Callable[[str | None], dict[str, Any]]


def user_mini(row: sqlite3.Row | None) -> dict[str, Any]:
    if row is None:
        return {"type": "user", "id": "", "name": "", "login": ""}
    return {"type": "user", "id": row["id"], "name": row["name"], "login": row["login"]}


def user_full(row: sqlite3.Row, *, space_used: int, max_upload_size: int) -> dict[str, Any]:
    return {
        **user_mini(row),
        "created_at": row["created_at"],
        "modified_at": row["created_at"],
        "language": "en",
        "timezone": "UTC",
        "space_amount": 999_999_999_999_999,
        "space_used": space_used,
        "max_upload_size": max_upload_size,
        "status": "active",
        "job_title": "",
        "phone": "",
        "address": "",
        "avatar_url": "",
        "notification_email": None,
    }


def _str_or_none(value: int | None) -> str | None:
    return None if value is None else str(value)


def folder_mini(row: sqlite3.Row) -> dict[str, Any]:
    if row["id"] == ROOT_ID:
        return {"type": "folder", "id": "0", "sequence_id": None, "etag": None, "name": ROOT_NAME}
    return {
        "type": "folder",
        "id": str(row["id"]),
        "sequence_id": str(row["sequence_id"]),
        "etag": str(row["etag"]),
        "name": row["name"],
    }


def file_version_mini(version: sqlite3.Row) -> dict[str, Any]:
    return {"type": "file_version", "id": str(version["id"]), "sha1": version["sha1"]}


def file_mini(row: sqlite3.Row, version: sqlite3.Row) -> dict[str, Any]:
    return {
        "type": "file",
        "id": str(row["id"]),
        "file_version": file_version_mini(version),
        "sequence_id": str(row["sequence_id"]),
        "etag": str(row["etag"]),
        "sha1": version["sha1"],
        "name": row["name"],
    }


def path_collection(ancestors: list[sqlite3.Row]) -> dict[str, Any]:
    return {"total_count": len(ancestors), "entries": [folder_mini(row) for row in ancestors]}


def file_standard(
    row: sqlite3.Row, version: sqlite3.Row, ancestors: list[sqlite3.Row], users: UserLookup
) -> dict[str, Any]:
    """The standard file representation (GET /files/:id, upload responses)."""
    name = row["name"]
    return {
        **file_mini(row, version),
        "description": row["description"],
        "size": version["size"],
        "path_collection": path_collection(ancestors),
        "created_at": row["created_at"],
        "modified_at": row["modified_at"],
        "trashed_at": None,
        "purged_at": None,
        "content_created_at": row["content_created_at"],
        "content_modified_at": row["content_modified_at"],
        "created_by": users(row["created_by"]),
        "modified_by": users(row["modified_by"]),
        "owned_by": users(row["owned_by"]),
        "shared_link": None,
        "parent": folder_mini(ancestors[-1]),
        "item_status": "active",
        # Not standard fields: only returned when asked for with fields=.
        "version_number": str(version["number"]),
        "extension": name.rsplit(".", 1)[1] if "." in name else "",
        "comment_count": 0,
    }


_FILE_EXTRA = ("version_number", "extension", "comment_count")


def folder_standard(
    row: sqlite3.Row,
    ancestors: list[sqlite3.Row],
    users: UserLookup,
    *,
    size: int,
    item_collection: dict[str, Any] | None,
) -> dict[str, Any]:
    """The standard folder representation (GET /folders/:id, POST /folders)."""
    is_root = row["id"] == ROOT_ID
    body = {
        **folder_mini(row),
        "created_at": None if is_root else row["created_at"],
        "modified_at": None if is_root else row["modified_at"],
        "description": row["description"],
        "size": size,
        "path_collection": path_collection(ancestors),
        "created_by": users(row["created_by"]),
        "modified_by": users(row["modified_by"]),
        "trashed_at": None,
        "purged_at": None,
        "content_created_at": None if is_root else row["content_created_at"],
        "content_modified_at": None if is_root else row["content_modified_at"],
        "owned_by": users(row["owned_by"]),
        "shared_link": None,
        "folder_upload_email": None,
        "parent": folder_mini(ancestors[-1]) if ancestors else None,
        "item_status": "active",
    }
    if item_collection is not None:
        body["item_collection"] = item_collection
    return body


def standard_view(full: dict[str, Any]) -> dict[str, Any]:
    """Drop the fields Box only returns when asked for."""
    if full["type"] == "file":
        return {key: value for key, value in full.items() if key not in _FILE_EXTRA}
    return full


def select_fields(full: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    """Box's ``fields=`` rule: mini fields plus the requested ones; no ``fields``: standard."""
    if not fields:
        return standard_view(full)
    mini = FILE_MINI_KEYS if full["type"] == "file" else FOLDER_MINI_KEYS
    wanted = set(mini) | set(fields)
    return {key: value for key, value in full.items() if key in wanted}


def version_full(version: sqlite3.Row, users: UserLookup) -> dict[str, Any]:
    return {
        "type": "file_version",
        "id": str(version["id"]),
        "sha1": version["sha1"],
        "name": version["name"],
        "size": version["size"],
        "created_at": version["created_at"],
        "modified_at": version["modified_at"],
        "modified_by": users(version["modified_by"]),
        "trashed_at": None,
        "trashed_by": None,
        "restored_at": None,
        "restored_by": None,
        "purged_at": None,
        "uploader_display_name": users(version["modified_by"])["name"],
        "version_number": str(version["number"]),
    }


def parse_fields(raw: str | None) -> list[str] | None:
    if not raw:
        return None
    return [field.strip() for field in raw.split(",") if field.strip()]
