"""Direct uploads: the preflight check and multipart uploads of new files and new versions.

The ``attributes`` part is read and checked (name, folder, conflicts) before any file
bytes are stored; the ``file`` part is streamed to a temp file while SHA-1 is computed,
then checked against ``Content-MD5`` (which Box defines as the hex SHA-1).
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
from collections.abc import Callable
from typing import Any

from starlette.responses import Response

from .app import Ctx, Route
from .blobs import StoredBody, store_stream
from .errors import BoxError, bad_request, json_response
from .items import NameInUse, validate_name
from .items_api import item_json, json_body, mini_json
from .multipart import MultipartReader, boundary_of
from .render import parse_fields, select_fields
from .timefmt import parse_client_time

MAX_ATTRIBUTES_BYTES = 1024 * 1024
_HEX_SHA1 = re.compile(r"^[0-9a-fA-F]{40}$")


def name_in_use(ctx: Ctx, existing: sqlite3.Row) -> BoxError:
    """Box's upload conflict: ``context_info.conflicts`` is the existing item itself (an object)."""
    return BoxError(
        409,
        "item_name_in_use",
        "Item with the same name already exists",
        context_info={"conflicts": mini_json(ctx, existing)},
    )


def check_size(ctx: Ctx, size: object) -> None:
    if size is None:
        return
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise bad_request(f"'size' must be a non-negative integer, got {size!r}")
    if size > ctx.state.config.max_upload_size:
        raise BoxError(403, "file_size_limit_exceeded", "File size exceeds the folder owner's file size limit")


def _parent_id(attributes: dict[str, Any]) -> str:
    parent = attributes.get("parent")
    if not isinstance(parent, dict) or not isinstance(parent.get("id"), str):
        raise bad_request("'parent.id' is required and must be a string")
    return parent["id"]


# -- preflight -------------------------------------------------------------------------------


def _upload_url(ctx: Ctx, path: str) -> dict[str, Any]:
    return {
        "upload_url": f"{ctx.origin}/api/2.0/{path}?upload_session_id={secrets.token_hex(16)}",
        "upload_token": None,
    }


async def preflight_upload(ctx: Ctx) -> Response:
    body = await json_body(ctx)
    name = validate_name(body.get("name"))
    folder = ctx.state.items.folder(_parent_id(body), in_path=False)
    check_size(ctx, body.get("size"))
    existing = ctx.state.items.named(folder["id"], name)
    if existing is not None:
        raise name_in_use(ctx, existing)
    return json_response(_upload_url(ctx, "files/content"))


async def preflight_upload_version(ctx: Ctx) -> Response:
    row = ctx.state.items.file(ctx.params["file_id"])
    body = await json_body(ctx)
    check_size(ctx, body.get("size"))
    if body.get("name") is not None:
        name = validate_name(body["name"])
        existing = ctx.state.items.named(row["parent_id"], name)
        if existing is not None and existing["id"] != row["id"]:
            raise name_in_use(ctx, existing)
    return json_response(_upload_url(ctx, f"files/{row['id']}/content"))


# -- multipart upload ------------------------------------------------------------------------


async def read_upload(ctx: Ctx, check_attributes: Callable[[dict[str, Any]], None]) -> tuple[dict, StoredBody]:
    """Parse the multipart body: attributes first (checked at once), then the file to disk."""
    reader = MultipartReader(ctx.request.stream(), boundary_of(ctx.request.headers.get("content-type")))
    attributes: dict[str, Any] | None = None
    stored: StoredBody | None = None
    try:
        while (part := await reader.next_part()) is not None:
            if part.name == "attributes":
                if stored is not None:
                    raise BoxError(400, "metadata_after_file_contents", "Metadata is included after file contents")
                try:
                    attributes = json.loads(await reader.read_part(MAX_ATTRIBUTES_BYTES))
                except ValueError as exc:
                    raise bad_request(f"'attributes' is not valid JSON: {exc}") from exc
                if not isinstance(attributes, dict):
                    raise bad_request("'attributes' must be a JSON object")
                check_attributes(attributes)
            elif part.name == "file":
                if attributes is None:
                    raise BoxError(400, "metadata_after_file_contents", "Metadata is included after file contents")
                stored = await store_stream(reader.part_data(), ctx.state.blobs.temp_path())
    except BaseException:
        if stored is not None:
            stored.path.unlink(missing_ok=True)
        raise
    if attributes is None or stored is None:
        raise bad_request("multipart body must contain an 'attributes' part followed by a 'file' part")
    return attributes, stored


def check_content_md5(ctx: Ctx, stored: StoredBody) -> None:
    claimed = ctx.request.headers.get("content-md5")
    if claimed is None:
        return
    if not _HEX_SHA1.match(claimed.strip()) or claimed.strip().lower() != stored.sha1:
        raise BoxError(400, "bad_digest", "The specified content-md5 did not match what we received")


def _files_response(ctx: Ctx, row: sqlite3.Row, status: int) -> Response:
    entry = select_fields(item_json(ctx, row), parse_fields(ctx.request.query_params.get("fields")))
    return json_response({"total_count": 1, "entries": [entry]}, status)


def _commit(ctx: Ctx, stored: StoredBody, write: Callable[[], sqlite3.Row]) -> sqlite3.Row:
    """Check the uploaded body (content-md5, size), then ``write`` it as a file or a version; a
    name taken meanwhile is Box's 409. The temp file goes either way."""
    try:
        check_content_md5(ctx, stored)
        check_size(ctx, stored.size)
        return write()
    except NameInUse as exc:
        raise name_in_use(ctx, exc.existing) from exc
    finally:
        stored.path.unlink(missing_ok=True)


async def upload_file(ctx: Ctx) -> Response:
    checked: dict[str, Any] = {}

    def check(attributes: dict[str, Any]) -> None:
        checked["name"] = validate_name(attributes.get("name"))
        checked["folder"] = ctx.state.items.folder(_parent_id(attributes), in_path=False)
        checked["created"] = parse_client_time(attributes.get("content_created_at"), "content_created_at")
        checked["modified"] = parse_client_time(attributes.get("content_modified_at"), "content_modified_at")
        existing = ctx.state.items.named(checked["folder"]["id"], checked["name"])
        if existing is not None:
            raise name_in_use(ctx, existing)

    _, stored = await read_upload(ctx, check)
    row = _commit(
        ctx,
        stored,
        lambda: ctx.state.items.create_file(
            checked["folder"]["id"],
            checked["name"],
            stored,
            ctx.user_id,
            content_created_at=checked["created"],
            content_modified_at=checked["modified"],
        ),
    )
    return _files_response(ctx, row, 201)


async def upload_file_version(ctx: Ctx) -> Response:
    target = ctx.state.items.file(ctx.params["file_id"])
    checked: dict[str, Any] = {}

    def check(attributes: dict[str, Any]) -> None:
        name = attributes.get("name")
        checked["name"] = validate_name(name) if name is not None else None
        checked["modified"] = parse_client_time(attributes.get("content_modified_at"), "content_modified_at")

    _, stored = await read_upload(ctx, check)
    row = _commit(
        ctx,
        stored,
        lambda: ctx.state.items.add_version(
            target["id"],
            stored,
            ctx.user_id,
            new_name=checked["name"],
            if_match=ctx.request.headers.get("if-match"),
            content_modified_at=checked["modified"],
        ),
    )
    # The API reference documents 200 for a new version (201 for a new file).
    return _files_response(ctx, row, 200)


ROUTES = [
    Route("OPTIONS", "/2.0/files/content", "preflight_upload", preflight_upload),
    Route("OPTIONS", "/2.0/files/{file_id}/content", "preflight_upload_version", preflight_upload_version),
    Route("POST", "/api/2.0/files/content", "upload_file", upload_file),
    Route("POST", "/api/2.0/files/{file_id}/content", "upload_file_version", upload_file_version),
]
