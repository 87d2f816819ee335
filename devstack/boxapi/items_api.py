"""Handlers of the API host: the user, folders, files, versions and downloads."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import sqlite3
import time
from datetime import datetime
from typing import Any
from urllib.parse import quote

from starlette.responses import FileResponse, Response

from .app import Ctx, Route
from .errors import BoxError, bad_request, json_response, not_found
from .items import NameInUse, validate_name
from .render import (
    file_mini,
    file_standard,
    folder_mini,
    folder_standard,
    parse_fields,
    select_fields,
    user_full,
    version_full,
)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 10_000
DOWNLOAD_LINK_TTL_S = 15 * 60
ITEMS_ORDER = [{"by": "type", "direction": "ASC"}, {"by": "name", "direction": "ASC"}]


# -- shared helpers ------------------------------------------------------------------------


async def json_body(ctx: Ctx) -> dict[str, Any]:
    raw = await ctx.request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise bad_request(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object")
    return body


def int_param(ctx: Ctx, name: str, default: int, *, code: str) -> int:
    raw = ctx.request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise BoxError(400, code, f"{name.capitalize()} is not a valid number: {raw!r}") from exc
    if value < 0:
        raise BoxError(400, code, f"{name} must not be negative, got {value}")
    return value


def bool_param(ctx: Ctx, name: str) -> bool:
    return ctx.request.query_params.get(name, "").lower() in ("true", "1")


def item_json(
    ctx: Ctx, row: sqlite3.Row, ancestors: list[sqlite3.Row] | None = None, *, folder_size: bool = True
) -> dict[str, Any]:
    """The full (standard + optional) representation of a file or folder.

    A folder's size sums its whole subtree; listings skip that unless ``size`` is asked for.
    """
    items, users = ctx.state.items, ctx.state.users.mini
    chain = ancestors if ancestors is not None else items.ancestors(row)
    if row["type"] == "file":
        return file_standard(row, items.version(row["version_id"]), chain, users)
    size = items.folder_size(row["id"]) if folder_size else 0
    return folder_standard(row, chain, users, size=size, item_collection=None)


def mini_json(ctx: Ctx, row: sqlite3.Row) -> dict[str, Any]:
    if row["type"] == "file":
        return file_mini(row, ctx.state.items.version(row["version_id"]))
    return folder_mini(row)


def not_modified(ctx: Ctx, row: sqlite3.Row) -> bool:
    return ctx.request.headers.get("if-none-match", "").strip('"') == str(row["etag"])


def page_bounds(ctx: Ctx) -> tuple[int, int]:
    limit = min(int_param(ctx, "limit", DEFAULT_LIMIT, code="invalid_limit"), MAX_LIMIT)
    offset = int_param(ctx, "offset", 0, code="invalid_offset")
    return offset, limit


# -- users -----------------------------------------------------------------------------------


async def get_user_me(ctx: Ctx) -> Response:
    assert ctx.user is not None
    body = user_full(
        ctx.user, space_used=ctx.state.items.total_size(), max_upload_size=ctx.state.config.max_upload_size
    )
    return json_response(body)


# -- folders ---------------------------------------------------------------------------------


def _collection(ctx: Ctx, folder: sqlite3.Row, offset: int, limit: int, fields: list[str] | None) -> dict[str, Any]:
    request = ctx.request
    sort = request.query_params.get("sort", "name")
    if sort not in ("id", "name", "date", "size"):
        raise bad_request(f"sort must be one of id, name, date, size; got {sort!r}")
    descending = request.query_params.get("direction", "ASC").upper() == "DESC"
    page = ctx.state.items.children(folder["id"], sort=sort, descending=descending, offset=offset, limit=limit)
    return {
        "total_count": page.total,
        "entries": _entries(ctx, folder, page.rows, fields),
        "offset": offset,
        "limit": limit,
        "order": [ITEMS_ORDER[0], {"by": sort, "direction": "DESC" if descending else "ASC"}],
    }


def _entries(ctx: Ctx, folder: sqlite3.Row, rows: list[sqlite3.Row], fields: list[str] | None) -> list[dict]:
    if not fields:
        return [mini_json(ctx, row) for row in rows]
    chain = [*ctx.state.items.ancestors(folder), folder]
    sized = "size" in fields
    return [select_fields(item_json(ctx, row, chain, folder_size=sized), fields) for row in rows]


async def create_folder(ctx: Ctx) -> Response:
    body = await json_body(ctx)
    name = validate_name(body.get("name"))
    parent = body.get("parent")
    if not isinstance(parent, dict) or not isinstance(parent.get("id"), str):
        raise bad_request("'parent.id' is required and must be a string")
    parent_row = ctx.state.items.folder(parent["id"], in_path=False)
    try:
        row = ctx.state.items.create_folder(parent_row["id"], name, ctx.user_id)
    except NameInUse as exc:
        raise _name_in_use(ctx, exc) from exc
    full = item_json(ctx, row)
    full["item_collection"] = _collection(ctx, row, 0, DEFAULT_LIMIT, None)
    return json_response(select_fields(full, parse_fields(ctx.request.query_params.get("fields"))), 201)


async def get_folder(ctx: Ctx) -> Response:
    row = ctx.state.items.folder(ctx.params["folder_id"])
    if not_modified(ctx, row):
        return Response(status_code=304)
    offset, limit = page_bounds(ctx)
    full = item_json(ctx, row)
    full["item_collection"] = _collection(ctx, row, offset, limit, None)
    return json_response(select_fields(full, parse_fields(ctx.request.query_params.get("fields"))))


def _marker_encode(row: sqlite3.Row) -> str:
    key = [int(row["rank"]), row["name_key"], int(row["id"])]
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def _marker_decode(marker: str) -> tuple[int, str, int]:
    try:
        rank, key, item_id = json.loads(base64.urlsafe_b64decode(marker + "=" * (-len(marker) % 4)))
        return int(rank), str(key), int(item_id)
    except (ValueError, TypeError) as exc:
        raise bad_request(f"invalid marker {marker!r}", "invalid_request_parameters") from exc


async def get_folder_items(ctx: Ctx) -> Response:
    folder = ctx.state.items.folder(ctx.params["folder_id"])
    fields = parse_fields(ctx.request.query_params.get("fields"))
    offset, limit = page_bounds(ctx)
    if not bool_param(ctx, "usemarker"):
        return json_response(_collection(ctx, folder, offset, limit, fields))
    marker = ctx.request.query_params.get("marker")
    rows = ctx.state.items.children_after(folder["id"], _marker_decode(marker) if marker else None, limit + 1)
    page, more = rows[:limit], len(rows) > limit
    body = {
        "entries": _entries(ctx, folder, page, fields),
        "limit": limit,
        "next_marker": _marker_encode(page[-1]) if more and page else None,
    }
    return json_response(body)


async def update_folder(ctx: Ctx) -> Response:
    """Rename (``name``) and/or move (``parent.id``) a folder; 409 ``item_name_in_use`` as on create."""
    row = ctx.state.items.folder(ctx.params["folder_id"])
    body = await json_body(ctx)
    name = validate_name(body["name"]) if "name" in body else None
    parent = body.get("parent")
    if parent is not None and (not isinstance(parent, dict) or not isinstance(parent.get("id"), str)):
        raise bad_request("'parent.id' must be a string")
    parent_id = ctx.state.items.folder(parent["id"], in_path=False)["id"] if parent else None
    try:
        updated = ctx.state.items.update_folder(
            row["id"], name=name, parent_id=parent_id, if_match=ctx.request.headers.get("if-match"), user_id=ctx.user_id
        )
    except NameInUse as exc:
        raise _name_in_use(ctx, exc) from exc
    return json_response(select_fields(item_json(ctx, updated), parse_fields(ctx.request.query_params.get("fields"))))


async def delete_folder(ctx: Ctx) -> Response:
    row = ctx.state.items.folder(ctx.params["folder_id"])
    ctx.state.items.delete_folder(
        row, recursive=bool_param(ctx, "recursive"), if_match=ctx.request.headers.get("if-match")
    )
    return Response(status_code=204)


# -- files -----------------------------------------------------------------------------------


async def get_file(ctx: Ctx) -> Response:
    row = ctx.state.items.file(ctx.params["file_id"])
    if not_modified(ctx, row):
        return Response(status_code=304)
    return json_response(select_fields(item_json(ctx, row), parse_fields(ctx.request.query_params.get("fields"))))


async def delete_file(ctx: Ctx) -> Response:
    row = ctx.state.items.file(ctx.params["file_id"])
    ctx.state.items.delete_file(row, ctx.request.headers.get("if-match"))
    return Response(status_code=204)


async def get_file_versions(ctx: Ctx) -> Response:
    """Past versions only, newest first (the current one is on the file itself)."""
    row = ctx.state.items.file(ctx.params["file_id"])
    offset, limit = page_bounds(ctx)
    if offset > MAX_OFFSET:
        raise bad_request(f"offset must not exceed {MAX_OFFSET}, got {offset}", "invalid_offset")
    past = [v for v in ctx.state.items.versions_of(row["id"]) if v["id"] != row["version_id"]]
    entries = [version_full(v, ctx.state.users.mini) for v in past[offset : offset + limit]]
    return json_response({"total_count": len(past), "entries": entries, "offset": offset, "limit": limit})


def _epoch(iso_time: str) -> float:
    return datetime.fromisoformat(iso_time).timestamp()


def _sign(key: bytes, payload: str) -> str:
    return base64.urlsafe_b64encode(hmac.new(key, payload.encode(), hashlib.sha256).digest()[:18]).decode()


async def download_file(ctx: Ctx) -> Response:
    """Like Box: 302 to a short-lived link on the download host (here ``/dl/...``), or 202 with
    ``retry-after`` while the version is younger than ``download_ready_s`` ("file not ready")."""
    row = ctx.state.items.file(ctx.params["file_id"])
    versions = {v["id"]: v for v in ctx.state.items.versions_of(row["id"])}
    version_id = row["version_id"]
    wanted = ctx.request.query_params.get("version")
    if wanted:
        if not wanted.isdigit() or int(wanted) not in versions:
            raise not_found("file_version", wanted, "fv")
        version_id = int(wanted)
    created = versions[version_id]["created_at"] if version_id in versions else None
    not_ready_s = ctx.state.config.download_ready_s - (time.time() - _epoch(created)) if created else 0.0
    if not_ready_s > 0:
        return Response(status_code=202, headers={"Retry-After": str(max(1, math.ceil(not_ready_s)))})
    payload = f"{row['id']}.{version_id}.{int(time.time() + DOWNLOAD_LINK_TTL_S)}"
    token = f"{payload}.{_sign(ctx.state.download_key, payload)}"
    return Response(status_code=302, headers={"Location": f"{ctx.origin}/dl/d/{token}/download"})


async def download_content(ctx: Ctx) -> Response:
    """The download host: serves the bytes of one version, with Range support."""
    token = ctx.params["token"]
    payload, _, signature = token.rpartition(".")
    parts = payload.split(".")
    if len(parts) != 3 or not hmac.compare_digest(_sign(ctx.state.download_key, payload), signature):
        return Response(status_code=403, content=b"invalid download link")
    file_id, version_id, expires = (int(p) for p in parts)
    if expires < time.time():
        return Response(status_code=403, content=b"download link expired")
    row = ctx.state.items.get(file_id)
    if row is None:
        return Response(status_code=404, content=b"file not found")
    version = ctx.state.db.query_one("SELECT * FROM versions WHERE id = ? AND file_id = ?", (version_id, file_id))
    path = ctx.state.blobs.blob_path(version_id)
    if version is None or not path.exists():
        return Response(status_code=404, content=b"file not found")
    disposition = f"attachment; filename*=UTF-8''{quote(version['name'])}"
    return FileResponse(
        path,
        media_type="application/octet-stream",
        headers={"Content-Disposition": disposition, "ETag": f'"{version["sha1"]}"'},
        stat_result=None,
    )


ROUTES = [
    Route("GET", "/2.0/users/me", "get_user_me", get_user_me),
    Route("POST", "/2.0/folders", "create_folder", create_folder),
    Route("GET", "/2.0/folders/{folder_id}", "get_folder", get_folder),
    Route("GET", "/2.0/folders/{folder_id}/items", "get_folder_items", get_folder_items),
    Route("PUT", "/2.0/folders/{folder_id}", "update_folder", update_folder),
    Route("DELETE", "/2.0/folders/{folder_id}", "delete_folder", delete_folder),
    Route("GET", "/2.0/files/{file_id}", "get_file", get_file),
    Route("DELETE", "/2.0/files/{file_id}", "delete_file", delete_file),
    Route("GET", "/2.0/files/{file_id}/versions", "get_file_versions", get_file_versions),
    Route("GET", "/2.0/files/{file_id}/content", "download_file", download_file),
    Route("GET", "/dl/d/{token}/download", "download_content", download_content, auth=False),
]


def _name_in_use(ctx: Ctx, exc: NameInUse) -> BoxError:
    """Box's 409 for a name its folder already holds, naming the item that holds it."""
    return BoxError(
        409,
        "item_name_in_use",
        "Item with the same name already exists",
        context_info={"conflicts": [mini_json(ctx, exc.existing)]},
    )
