"""Chunked uploads: creating upload sessions, uploading parts, listing, status, abort.

Parts may arrive in any order and in parallel. Each part streams straight to its offset
in the session's data file (SHA-1 computed on the way), one writer per range at a time;
only once its size and ``Digest`` check out is it recorded, so an unrecorded range may
hold anything but a recorded one is final. Re-sending a part that is already recorded
with the same bytes returns the recorded part (what a client retrying after a lost
response needs); different bytes get 409 ``range_overlaps_existing_part``. Commit lives
in :mod:`devstack.boxapi.commit`; the whole-file SHA-1 in :mod:`.session_hash`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
import re
import secrets
import sqlite3
import time
from contextlib import asynccontextmanager
from typing import Any

from starlette.responses import Response

from . import session_hash
from .app import Ctx, Route
from .blobs import store_stream, store_stream_at
from .config import BASE_PART_SIZE, MAX_PARTS, MIN_SESSION_FILE_SIZE
from .errors import BoxError, bad_request, json_response
from .items import validate_name
from .items_api import int_param, json_body
from .timefmt import iso
from .uploads import check_size, name_in_use

_SESSION_ID = re.compile(r"^[0-9A-F]{32}$")
_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
DEFAULT_PARTS_LIMIT = 100
MAX_PARTS_LIMIT = 1000


def part_size_for(file_size: int) -> int:
    """8 MiB like Box, doubled only when the file would need more than Box's part cap."""
    size = BASE_PART_SIZE
    while math.ceil(file_size / size) > MAX_PARTS:
        size *= 2
    return size


def session_json(ctx: Ctx, session: sqlite3.Row) -> dict[str, Any]:
    base = f"{ctx.origin}/api/2.0/files/upload_sessions/{session['id']}"
    count = ctx.state.db.query_one("SELECT COUNT(*) AS n FROM upload_parts WHERE session_id = ?", (session["id"],))
    return {
        "id": session["id"],
        "type": "upload_session",
        "session_expires_at": iso(session["expires_at"]),
        "part_size": session["part_size"],
        "total_parts": session["total_parts"],
        "num_parts_processed": int(count["n"]) if count else 0,
        "session_endpoints": {
            "upload_part": base,
            "commit": f"{base}/commit",
            "abort": base,
            "list_parts": f"{base}/parts",
            "status": base,
            "log_event": f"{base}/log",
        },
    }


def part_json(part: sqlite3.Row) -> dict[str, Any]:
    return {"part_id": part["part_id"], "offset": part["offset"], "size": part["size"], "sha1": part["sha1"]}


def _file_size(body: dict[str, Any]) -> int:
    if "file_size" not in body:
        raise bad_request("'file_size' is required", "missing_file_size")
    size = body["file_size"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise bad_request(f"'file_size' must be a non-negative integer, got {size!r}", "invalid_file_size")
    if size < MIN_SESSION_FILE_SIZE:
        raise bad_request(
            f"File size {size} less than minimum allowed for this API: {MIN_SESSION_FILE_SIZE}", "file_size_too_small"
        )
    return size


def _open_session(ctx: Ctx, *, file_size: int, folder_id: int, file_id: int | None, name: str | None) -> Response:
    part_size = part_size_for(file_size)
    session_id = secrets.token_hex(16).upper()
    now = time.time()
    with ctx.state.db.tx() as conn:
        conn.execute(
            "INSERT INTO upload_sessions (id, folder_id, file_id, file_name, file_size, part_size, total_parts,"
            " created_at, expires_at, state, user_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?)",
            (
                session_id, folder_id, file_id, name, file_size, part_size, math.ceil(file_size / part_size),
                now, now + ctx.state.config.session_ttl_s, ctx.user_id,
            ),
        )  # fmt: skip
    ctx.state.blobs.create_session_file(session_id, file_size)
    session = ctx.state.db.query_one("SELECT * FROM upload_sessions WHERE id = ?", (session_id,))
    assert session is not None
    return json_response(session_json(ctx, session), 201)


async def create_upload_session(ctx: Ctx) -> Response:
    body = await json_body(ctx)
    raw_folder = body.get("folder_id")
    if raw_folder is None:
        raise bad_request("'folder_id' is required", "missing_destination")
    if not isinstance(raw_folder, str) or not raw_folder.isdigit():
        raise bad_request(f"'folder_id' must be a folder id string, got {raw_folder!r}", "invalid_folder_id")
    file_size = _file_size(body)
    if body.get("file_name") is None:
        raise bad_request("'file_name' is required", "missing_file_name")
    name = validate_name(body["file_name"], "file_name")
    folder = ctx.state.items.folder(raw_folder, in_path=False)
    check_size(ctx, file_size)
    existing = ctx.state.items.named(folder["id"], name)
    if existing is not None:
        raise name_in_use(ctx, existing)
    return _open_session(ctx, file_size=file_size, folder_id=folder["id"], file_id=None, name=name)


async def create_upload_session_version(ctx: Ctx) -> Response:
    target = ctx.state.items.file(ctx.params["file_id"])
    body = await json_body(ctx)
    file_size = _file_size(body)
    name = None
    if body.get("file_name") is not None:
        name = validate_name(body["file_name"], "file_name")
        existing = ctx.state.items.named(target["parent_id"], name)
        if existing is not None and existing["id"] != target["id"]:
            raise name_in_use(ctx, existing)
    check_size(ctx, file_size)
    return _open_session(ctx, file_size=file_size, folder_id=target["parent_id"], file_id=target["id"], name=name)


def load_session(ctx: Ctx, *, allow_committed: bool = False) -> sqlite3.Row:
    """The session named in the path, checked: format, existence, expiry, owner."""
    session_id = ctx.params["session_id"]
    if not _SESSION_ID.match(session_id):
        raise bad_request(
            "The upload session ID provided in the URL is not of a valid format.", "invalid_upload_session_id"
        )
    session = ctx.state.db.query_one("SELECT * FROM upload_sessions WHERE id = ?", (session_id,))
    if session is None or session["state"] == "aborted" or (session["state"] == "committed" and not allow_committed):
        raise BoxError(404, "not_found", "Upload session not found")
    if session["state"] != "committed" and session["expires_at"] <= time.time():
        discard_session(ctx, session_id)
        raise BoxError(410, "session_expired", "The upload session has expired")
    if session["user_id"] != ctx.user_id:
        raise BoxError(403, "forbidden", "Only the user who created the upload session may use it")
    return session


def discard_session(ctx: Ctx, session_id: str, state: str = "aborted") -> None:
    with ctx.state.db.tx() as conn:
        conn.execute("UPDATE upload_sessions SET state = ? WHERE id = ?", (state, session_id))
        conn.execute("DELETE FROM upload_parts WHERE session_id = ?", (session_id,))
    task = ctx.state.assemblies.pop(session_id, None)
    if task is not None:
        task.cancel()
    session_hash.forget(ctx.state, session_id)
    ctx.state.blobs.delete_session(session_id)


async def get_upload_session(ctx: Ctx) -> Response:
    return json_response(session_json(ctx, load_session(ctx)))


async def abort_upload_session(ctx: Ctx) -> Response:
    session = load_session(ctx)
    discard_session(ctx, session["id"])
    return Response(status_code=204)


async def list_parts(ctx: Ctx) -> Response:
    session = load_session(ctx)
    limit = min(int_param(ctx, "limit", DEFAULT_PARTS_LIMIT, code="invalid_limit"), MAX_PARTS_LIMIT)
    offset = int_param(ctx, "offset", 0, code="invalid_offset")
    if offset > 10_000:
        raise bad_request(f"offset must not exceed 10000, got {offset}", "invalid_offset")
    rows = ctx.state.db.query(
        "SELECT * FROM upload_parts WHERE session_id = ? ORDER BY offset LIMIT ? OFFSET ?",
        (session["id"], limit, offset),
    )
    total = ctx.state.db.query_one("SELECT COUNT(*) AS n FROM upload_parts WHERE session_id = ?", (session["id"],))
    return json_response(
        {
            "total_count": int(total["n"]) if total else 0,
            "limit": limit,
            "offset": offset,
            "order": [{"by": "offset", "direction": "ASC"}],
            "entries": [part_json(row) for row in rows],
        }
    )


def parse_digest(header: str | None, what: str) -> str:
    """The base64 SHA-1 of an RFC 3230 ``Digest: sha=...`` header; 400 if absent or malformed."""
    for item in (header or "").split(","):
        algorithm, sep, value = item.strip().partition("=")
        if sep and algorithm.strip().lower() == "sha":
            value = value.strip()
            try:
                if len(base64.b64decode(value, validate=True)) == 20:
                    return value
            except (binascii.Error, ValueError):
                pass
    raise bad_request(f"Digest header must be 'sha=<base64 SHA-1 of the {what}>', got {header!r}")


def hex_to_b64(hex_sha1: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_sha1)).decode()


def _part_range(ctx: Ctx, session: sqlite3.Row) -> tuple[int, int]:
    header = ctx.request.headers.get("content-range")
    match = _RANGE.match(header or "")
    if match is None:
        raise bad_request(f"Content-Range must be 'bytes <first>-<last>/<total>', got {header!r}")
    first, last, total = (int(g) for g in match.groups())
    size, part_size = session["file_size"], session["part_size"]
    length = last - first + 1
    problem = None
    if total != size:
        problem = f"total {total} is not the session's file_size {size}"
    elif last < first or last >= size:
        problem = f"range {first}-{last} is outside the file (size {size})"
    elif first % part_size:
        problem = f"first byte {first} is not a multiple of the part size {part_size}"
    elif length != part_size and last != size - 1:
        problem = f"part length {length} must equal the part size {part_size} (only the last part may be shorter)"
    elif length > part_size:
        problem = f"part length {length} exceeds the part size {part_size}"
    if problem:
        raise BoxError(416, "requested_range_not_satisfiable", f"Content-Range {header!r}: {problem}")
    declared = ctx.request.headers.get("content-length")
    if declared is None:
        raise BoxError(411, "length_required", "content-length header was required, but not provided.")
    if int(declared) != length:
        raise BoxError(416, "requested_range_not_satisfiable", f"Content-Length {declared} != range length {length}")
    return first, length


@asynccontextmanager
async def _range_lock(state: Any, key: tuple[str, int]):
    """Serialize uploads of the same range (a retry racing the original, say)."""
    entry = state.part_locks.setdefault(key, [asyncio.Lock(), 0])
    entry[1] += 1
    try:
        async with entry[0]:
            yield
    finally:
        entry[1] -= 1
        if entry[1] == 0:
            del state.part_locks[key]


async def upload_part(ctx: Ctx) -> Response:
    session = load_session(ctx)
    if session["state"] != "open":
        raise BoxError(409, "operation_blocked_temporary", "The upload session is being committed")
    digest = parse_digest(ctx.request.headers.get("digest"), "part")
    offset, length = _part_range(ctx, session)
    session_id = session["id"]
    async with _range_lock(ctx.state, (session_id, offset)):
        existing = _part_at(ctx, session_id, offset)
        if existing is None:
            try:
                stored = await store_stream_at(ctx.request.stream(), ctx.state.blobs.session_data(session_id), offset)
            except FileNotFoundError as exc:  # aborted between our check and the write
                raise BoxError(404, "not_found", "Upload session not found") from exc
        else:
            stored = await store_stream(ctx.request.stream(), None)  # compare only, never rewrite
        if stored.size != length:
            raise bad_request(f"received {stored.size} bytes, Content-Range says {length}", "request_size_mismatch")
        if hex_to_b64(stored.sha1) != digest:
            raise BoxError(
                412,
                "precondition_failed",
                f"Digest sha={digest} does not match the part's SHA-1 sha={hex_to_b64(stored.sha1)}",
            )
        part = existing or _record_part(ctx, session_id, offset, stored.size, stored.sha1)
    if part["sha1"] != stored.sha1:
        raise BoxError(409, "range_overlaps_existing_part", f"A different part was already uploaded at offset {offset}")
    session_hash.kick(ctx.state, session_id)
    return json_response({"part": part_json(part)})


def _part_at(ctx: Ctx, session_id: str, offset: int) -> sqlite3.Row | None:
    return ctx.state.db.query_one(
        "SELECT * FROM upload_parts WHERE session_id = ? AND offset = ?", (session_id, offset)
    )


def _record_part(ctx: Ctx, session_id: str, offset: int, size: int, sha1: str) -> sqlite3.Row:
    """Record a verified part, unless the session ended while its bytes were arriving."""
    with ctx.state.db.tx() as conn:
        session = conn.execute("SELECT state FROM upload_sessions WHERE id = ?", (session_id,)).fetchone()
        if session is None or session["state"] != "open":
            raise BoxError(404, "not_found", "Upload session not found")
        conn.execute(
            "INSERT INTO upload_parts (session_id, offset, size, sha1, part_id) VALUES (?, ?, ?, ?, ?)",
            (session_id, offset, size, sha1, secrets.token_hex(4).upper()),
        )
        row = conn.execute(
            "SELECT * FROM upload_parts WHERE session_id = ? AND offset = ?", (session_id, offset)
        ).fetchone()
    return row


def cleanup_sessions(state: Any) -> None:
    """At start: forget expired sessions, reopen commits a previous process did not finish."""
    now = time.time()
    expired = state.db.query(
        "SELECT id FROM upload_sessions WHERE state NOT IN ('committed', 'aborted') AND expires_at <= ?", (now,)
    )
    with state.db.tx() as conn:
        conn.execute("UPDATE upload_sessions SET state = 'open' WHERE state = 'committing'")
        for row in expired:
            conn.execute("UPDATE upload_sessions SET state = 'aborted' WHERE id = ?", (row["id"],))
            conn.execute("DELETE FROM upload_parts WHERE session_id = ?", (row["id"],))
    for row in expired:
        state.blobs.delete_session(row["id"])


SESSION = "/api/2.0/files/upload_sessions/{session_id}"

ROUTES = [
    Route("POST", "/api/2.0/files/upload_sessions", "create_upload_session", create_upload_session),
    Route(
        "POST",
        "/api/2.0/files/{file_id}/upload_sessions",
        "create_upload_session_version",
        create_upload_session_version,
    ),
    Route("GET", SESSION, "get_upload_session", get_upload_session),
    Route("PUT", SESSION, "upload_part", upload_part),
    Route("DELETE", SESSION, "abort_upload_session", abort_upload_session),
    Route("GET", SESSION + "/parts", "list_parts", list_parts),
]
