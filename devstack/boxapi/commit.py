"""Committing an upload session: check the parts list, verify the digest, create the file.

The parts already sit at their offsets in the session's data file and its SHA-1 has been
computed while they arrived (:mod:`.session_hash`), so a commit finishes the digest,
compares it with ``Digest`` and moves the data file into place as the file's blob. This
runs as one task per session: a commit waits for it up to ``commit_wait_s``; past that
it answers 202 with ``Retry-After`` like Box does while processing, and the next commit
picks up the same task. Creating the file happens inside the task, so concurrent or
repeated commits can never create it twice; a commit of an already committed session
returns the same file again.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from typing import Any

from starlette.responses import Response

from . import session_hash
from .app import Ctx, Route, State
from .blobs import StoredBody
from .errors import BoxError, bad_request, json_response
from .items import NameInUse
from .items_api import item_json, json_body
from .render import parse_fields, select_fields
from .sessions import SESSION, hex_to_b64, load_session, parse_digest
from .timefmt import parse_client_time
from .uploads import name_in_use

RETRY_AFTER_S = "1"
log = logging.getLogger("devstack.boxapi")


def _files(ctx: Ctx, file_id: int) -> Response:
    row = ctx.state.items.get(file_id)
    if row is None:
        raise BoxError(404, "not_found", "The committed file no longer exists")
    entry = select_fields(item_json(ctx, row), parse_fields(ctx.request.query_params.get("fields")))
    return json_response({"total_count": 1, "entries": [entry]}, 201)


def _check_parts(ctx: Ctx, session: sqlite3.Row, listed: Any) -> None:
    """The uploaded parts, if the client's list names exactly them and they cover the file."""
    if not isinstance(listed, list):
        raise bad_request("'parts' is required and must be a list of uploaded parts")
    uploaded = ctx.state.db.query("SELECT * FROM upload_parts WHERE session_id = ? ORDER BY offset", (session["id"],))
    theirs = set()
    for part in listed:
        if not isinstance(part, dict):
            raise bad_request(f"every entry of 'parts' must be an object, got {part!r}")
        theirs.add((str(part.get("part_id")), part.get("offset"), part.get("size"), str(part.get("sha1", "")).lower()))
    ours = {(p["part_id"], p["offset"], p["size"], p["sha1"]) for p in uploaded}
    if theirs != ours:
        raise bad_request(
            f"The parts list ({len(theirs)} parts) does not match the uploaded parts ({len(ours)})", "parts_mismatch"
        )
    covered = sum(p["size"] for p in uploaded)
    if len(uploaded) != session["total_parts"] or covered != session["file_size"]:
        raise bad_request(
            f"{len(uploaded)} of {session['total_parts']} parts uploaded ({covered} of {session['file_size']} bytes)",
            "parts_mismatch",
        )


async def _finish(
    state: State,
    session: sqlite3.Row,
    digest: str,
    attributes: dict[str, Any],
    if_match: str | None,
) -> int:
    """Verify the whole-file digest, then create the file or version; returns the file id."""
    session_id = session["id"]
    sha1 = await session_hash.whole_file_sha1(state, session_id, session["file_size"])
    if hex_to_b64(sha1) != digest:
        raise BoxError(
            400, "digest_mismatch", f"File digest was incorrect. Actual: {hex_to_b64(sha1)} Expected: {digest}"
        )
    body = StoredBody(path=state.blobs.session_data(session_id), size=session["file_size"], sha1=sha1)
    user_id = session["user_id"]
    modified = parse_client_time(attributes.get("content_modified_at"), "content_modified_at")
    if session["file_id"] is None:
        row = state.items.create_file(
            session["folder_id"],
            session["file_name"],
            body,
            user_id,
            content_created_at=parse_client_time(attributes.get("content_created_at"), "content_created_at"),
            content_modified_at=modified,
        )
    else:
        row = state.items.add_version(
            session["file_id"],
            body,
            user_id,
            new_name=session["file_name"],
            if_match=if_match,
            content_modified_at=modified,
        )
    with state.db.tx() as conn:
        conn.execute(
            "UPDATE upload_sessions SET state = 'committed', result_file_id = ? WHERE id = ?", (row["id"], session_id)
        )
        conn.execute("DELETE FROM upload_parts WHERE session_id = ?", (session_id,))
    session_hash.forget(state, session_id)
    state.blobs.delete_session(session_id)
    return int(row["id"])


def _reopen(state: State, session_id: str) -> None:
    with state.db.tx() as conn:
        conn.execute("UPDATE upload_sessions SET state = 'open' WHERE id = ? AND state = 'committing'", (session_id,))


async def commit(ctx: Ctx) -> Response:
    session = load_session(ctx, allow_committed=True)
    if session["state"] == "committed":
        return _files(ctx, session["result_file_id"])
    digest = parse_digest(ctx.request.headers.get("digest"), "whole file")
    body = await json_body(ctx)
    attributes = body.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise bad_request("'attributes' must be an object")
    state, session_id = ctx.state, session["id"]
    task = state.assemblies.get(session_id)
    if task is None:
        _check_parts(ctx, session, body.get("parts"))
        with state.db.tx() as conn:
            conn.execute("UPDATE upload_sessions SET state = 'committing' WHERE id = ?", (session_id,))
        task = asyncio.ensure_future(_finish(state, session, digest, attributes, ctx.request.headers.get("if-match")))
        state.assemblies[session_id] = task
        task.add_done_callback(lambda done: _settle(state, session_id, done))
    try:
        file_id = await asyncio.wait_for(asyncio.shield(task), timeout=state.config.commit_wait_s)
    except TimeoutError:
        return Response(status_code=202, headers={"Retry-After": RETRY_AFTER_S})
    except NameInUse as exc:
        raise name_in_use(ctx, exc.existing) from exc
    except asyncio.CancelledError:
        if not task.cancelled():
            raise  # this request itself is being cancelled (shutdown)
        raise BoxError(404, "not_found", "Upload session not found (aborted during commit)") from None
    return _files(ctx, file_id)


def _settle(state: State, session_id: str, task: asyncio.Future) -> None:
    """When the task ends: forget it; on failure reopen the session so it can be committed again."""
    if state.assemblies.get(session_id) is task:
        del state.assemblies[session_id]
    if task.cancelled() or task.exception() is not None:
        try:
            _reopen(state, session_id)
        except Exception:  # the database may already be closed at shutdown
            log.warning("could not reopen upload session %s", session_id, exc_info=True)


ROUTES = [Route("POST", SESSION + "/commit", "commit", commit)]
