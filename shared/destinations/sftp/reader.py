"""Reading a file on an SFTP server fast: :class:`PipelinedReader`, a raw stream keeping several
READ requests ahead of the reader (verify's read-back, resume proofs, collect's copies)."""

from __future__ import annotations

import collections
import hashlib
import io
import threading
import time
from typing import Any

from paramiko.message import Message
from paramiko.sftp import CMD_DATA, CMD_READ, CMD_STATUS, SFTP_EOF

from shared.destinations.sftp.connect import SftpSession, int64, pipelined, sftp_errors
from shared.destinations.sftp.stream import CHUNK_BYTES, STOP_WAIT_S
from shared.errors import TransientError

READ_AHEAD = 16  # READ requests in flight: at most this many × the server's read size to drain on a stop


class _ReadReply:
    def __init__(self, offset: int, length: int) -> None:
        self.offset, self.length = offset, length
        self.kind: int | None = None
        self.msg: Message | None = None

    def _async_response(self, kind: int, msg: Message, num: int) -> None:
        self.kind, self.msg = kind, msg


class PipelinedReader(io.RawIOBase):
    """A file on the server as a readable stream, ``depth`` READ requests ahead of the reader.

    ``on_close(healthy)`` runs once when the stream closes (returns the session to its pool).
    """

    def __init__(
        self, session: SftpSession, path: str, on_close: Any = None, depth: int = READ_AHEAD, *, start: int = 0
    ) -> None:
        super().__init__()
        self._session, self._path, self._on_close = session, path, on_close
        self._depth = depth
        self._file: Any = None
        self._pending: collections.deque[_ReadReply] = collections.deque()
        self._next = start
        self._eof = False
        self._buffer = memoryview(b"")
        self._reading = threading.Lock()  # held by readinto: close() must not drain beside a read
        with sftp_errors(session.partner, "opening", path):
            self._file = session.sftp.open(path, "rb")

    def readable(self) -> bool:
        return True

    def _fill(self) -> None:
        step = self._session.max_read
        while not self._eof and len(self._pending) < self._depth:
            reply = _ReadReply(self._next, step)
            pipelined(self._session.sftp)._async_request(reply, CMD_READ, self._file.handle, int64(self._next), step)
            self._pending.append(reply)
            self._next += step

    def _restart_at(self, offset: int) -> None:
        """A short read: wait out the requests already sent, then continue at ``offset``."""
        while self._pending:
            reply = self._pending.popleft()
            while reply.kind is None:
                pipelined(self._session.sftp)._read_response()
        self._next = offset

    def readinto(self, buffer: Any) -> int:
        with self._reading:
            return self._readinto(buffer)

    def _readinto(self, buffer: Any) -> int:
        if not self._buffer and not self._eof:
            with sftp_errors(self._session.partner, "reading", self._path):
                self._fill()
                if not self._pending:
                    return 0
                reply = self._pending.popleft()
                while reply.kind is None:
                    pipelined(self._session.sftp)._read_response()
                assert reply.msg is not None
                if reply.kind == CMD_DATA:
                    self._buffer = memoryview(reply.msg.get_string())
                    if len(self._buffer) < reply.length:
                        self._restart_at(reply.offset + len(self._buffer))
                elif reply.kind == CMD_STATUS and reply.msg.get_int() == SFTP_EOF:
                    self._eof = True
                    self._restart_at(self._next)
                else:
                    raise TransientError(
                        f"sftp:{self._session.partner}: reading {self._path}: unexpected response {reply.kind}"
                    )
        count = min(len(buffer), len(self._buffer))
        buffer[:count] = self._buffer[:count]
        self._buffer = self._buffer[count:]
        return count

    def close(self) -> None:
        if self.closed:
            return
        # A read still running in another thread (a feeder that did not stop in time) owns the
        # session's responses: draining beside it would interleave them, so the session is dropped.
        healthy = self._reading.acquire(timeout=STOP_WAIT_S)
        try:
            if healthy and self._file is not None:
                self._restart_at(self._next)
                self._file.close()
        except Exception:  # noqa: BLE001 - closing after a failure: the session is not reused
            healthy = False
        finally:
            if healthy:
                self._reading.release()
            super().close()
            if self._on_close is not None:
                callback, self._on_close = self._on_close, None
                callback(healthy)


def read_sha1(session: SftpSession, path: str, deadline: float | None = None) -> str | None:
    """SHA-1 of the file at ``path``, read back through a PipelinedReader; None when
    ``deadline`` (``time.monotonic()``) passes first."""
    digest, stream = hashlib.sha1(), PipelinedReader(session, path)
    try:
        while chunk := stream.read(CHUNK_BYTES):
            digest.update(chunk)
            if deadline is not None and time.monotonic() > deadline:
                return None
    finally:
        stream.close()
    return digest.hexdigest()
