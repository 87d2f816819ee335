"""File bytes on disk: version blobs, upload-session data files, temp files, streamed SHA-1.

Request bodies are never held whole in memory: they are written to disk in batches of
about 1 MiB while SHA-1 is computed, both in a worker thread (hashlib and file writes
release the GIL, so parallel parts use several cores). Upload-session parts are written
straight to their offset in one session file, so a commit needs no concatenation.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread

BATCH_BYTES = 1024 * 1024
COPY_BUFFER = 4 * 1024 * 1024


@dataclass
class StoredBody:
    """A request body written to ``path``: its size and hex SHA-1."""

    path: Path
    size: int
    sha1: str


class _HashingSink:
    """Hashes what it is given and writes it to ``fd`` at ``offset`` onwards (if there is an fd)."""

    def __init__(self, fd: int | None, offset: int = 0) -> None:
        self.fd = fd
        self.offset = offset
        self.sha1 = hashlib.sha1()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.sha1.update(data)
        if self.fd is not None:
            view = memoryview(data)
            while view:
                written = os.pwrite(self.fd, view, self.offset + self.size)
                view = view[written:]
                self.size += written
        else:
            self.size += len(data)


class BlobStore:
    """The byte storage under ``DATA_DIR``: ``blobs/``, ``sessions/``, ``tmp/``."""

    def __init__(self, data_dir: Path) -> None:
        self.blobs = data_dir / "blobs"
        self.sessions = data_dir / "sessions"
        self.tmp = data_dir / "tmp"
        for path in (self.blobs, self.sessions, self.tmp):
            path.mkdir(parents=True, exist_ok=True)
        # Temp files of a previous run belong to requests that never finished.
        for leftover in self.tmp.iterdir():
            leftover.unlink(missing_ok=True)

    def blob_path(self, version_id: int) -> Path:
        return self.blobs / f"{version_id % 256:02x}" / str(version_id)

    def temp_path(self) -> Path:
        return self.tmp / uuid.uuid4().hex

    def session_dir(self, session_id: str) -> Path:
        return self.sessions / session_id

    def session_data(self, session_id: str) -> Path:
        """One file per upload session, parts written at their offsets (sparse until filled)."""
        return self.session_dir(session_id) / "data"

    def create_session_file(self, session_id: str, size: int) -> None:
        self.session_dir(session_id).mkdir(parents=True, exist_ok=True)
        with open(self.session_data(session_id), "wb") as data:
            data.truncate(size)

    def install(self, temp: Path, version_id: int) -> None:
        """Move a finished temp file into place as the blob of ``version_id``."""
        target = self.blob_path(version_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp, target)

    def delete_blobs(self, version_ids: list[int]) -> None:
        for version_id in version_ids:
            self.blob_path(version_id).unlink(missing_ok=True)

    def delete_session(self, session_id: str) -> None:
        shutil.rmtree(self.session_dir(session_id), ignore_errors=True)

    def wipe(self) -> None:
        for path in (self.blobs, self.sessions, self.tmp):
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True, exist_ok=True)


async def _pump(chunks: AsyncIterator[bytes], sink: _HashingSink) -> None:
    pending = bytearray()
    async for chunk in chunks:
        pending += chunk
        if len(pending) >= BATCH_BYTES:
            batch = bytes(pending)
            pending.clear()
            await anyio.to_thread.run_sync(sink.write, batch)
    if pending:
        await anyio.to_thread.run_sync(sink.write, bytes(pending))


async def store_stream(chunks: AsyncIterator[bytes], path: Path | None) -> StoredBody:
    """Write ``chunks`` to a new file ``path`` (or only hash them when ``path`` is None).

    The file is removed again if the stream fails (client gone, parse error).
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644) if path is not None else None
    sink = _HashingSink(fd)
    try:
        await _pump(chunks, sink)
    except BaseException:
        if path is not None:
            path.unlink(missing_ok=True)
        raise
    finally:
        if fd is not None:
            os.close(fd)
    return StoredBody(path=path or Path(os.devnull), size=sink.size, sha1=sink.sha1.hexdigest())


async def store_stream_at(chunks: AsyncIterator[bytes], path: Path, offset: int) -> StoredBody:
    """Write ``chunks`` into the existing file ``path`` from ``offset`` on, hashing them.

    On failure the bytes written so far stay in place: the caller records a region only
    once it is complete and verified, so unrecorded regions may hold anything.
    """
    fd = os.open(path, os.O_WRONLY)
    sink = _HashingSink(fd, offset)
    try:
        await _pump(chunks, sink)
    finally:
        os.close(fd)
    return StoredBody(path=path, size=sink.size, sha1=sink.sha1.hexdigest())


def hash_region(path: Path, digest: Any, offset: int, size: int) -> None:
    """Feed ``size`` bytes of ``path`` from ``offset`` into ``digest`` (worker thread)."""
    buffer = bytearray(min(COPY_BUFFER, max(size, 1)))
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as src:
        src.seek(offset)
        remaining = size
        while remaining > 0:
            count = src.readinto(view[: min(len(buffer), remaining)])
            if not count:
                raise OSError(f"{path} ended {remaining} bytes before offset {offset + size}")
            digest.update(view[:count])
            remaining -= count
