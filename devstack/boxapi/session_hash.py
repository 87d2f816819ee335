"""The whole-file SHA-1 of an upload session, computed while the parts arrive.

SHA-1 cannot be combined from part hashes, so the session's data file is hashed in
order: whenever the part at the hashed prefix's end is recorded, a background task reads
it back (from the page cache, in a worker thread) and extends the digest. By the time
the client commits, usually only the last part is left. State is in memory; after a
restart the digest is rebuilt from the data file.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread

from .blobs import hash_region


@dataclass
class SessionDigest:
    sha1: Any = field(default_factory=hashlib.sha1)
    hashed: int = 0
    task: asyncio.Task | None = None


def _next_part(state: Any, session_id: str, offset: int) -> tuple[int, int] | None:
    row = state.db.query_one(
        "SELECT offset, size FROM upload_parts WHERE session_id = ? AND offset = ?", (session_id, offset)
    )
    return None if row is None else (row["offset"], row["size"])


async def _advance(state: Any, session_id: str, digest: SessionDigest) -> None:
    path = state.blobs.session_data(session_id)
    while (part := _next_part(state, session_id, digest.hashed)) is not None:
        offset, size = part
        await anyio.to_thread.run_sync(hash_region, path, digest.sha1, offset, size)
        digest.hashed = offset + size


def kick(state: Any, session_id: str) -> SessionDigest:
    """Start hashing newly contiguous parts (no-op if a pass is already running)."""
    digest = state.digests.setdefault(session_id, SessionDigest())
    if digest.task is None or digest.task.done():
        digest.task = asyncio.ensure_future(_advance(state, session_id, digest))
    return digest


async def whole_file_sha1(state: Any, session_id: str, file_size: int) -> str:
    """Hex SHA-1 of the session's data once every part is hashed (all parts must be recorded)."""
    # Every recorded part kicks a pass, and a running pass looks for the next part after
    # each region, so once the current pass ends every part recorded before it is hashed.
    for _ in range(2):
        digest = kick(state, session_id)
        assert digest.task is not None
        await asyncio.shield(digest.task)
        if digest.hashed == file_size:
            break
    if digest.hashed != file_size:
        raise RuntimeError(f"session {session_id}: hashed {digest.hashed} of {file_size} bytes")
    return digest.sha1.copy().hexdigest()


def forget(state: Any, session_id: str) -> None:
    digest = state.digests.pop(session_id, None)
    if digest is not None and digest.task is not None:
        digest.task.cancel()
