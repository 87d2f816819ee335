"""Moving bytes over SFTP fast with bounded memory: a prefetching source, pipelined writes, reads.

Upload path: :class:`ChunkFeeder` reads the source on its own thread into a small bounded queue
(so the GCS download overlaps the SFTP upload) and computes SHA-1 as the bytes pass. One or
more writers (one per SSH connection, ``connections_per_file``) take chunks from the queue and
send them as SFTP WRITE requests at the chunk's own offset, with many requests in flight and
every response's status checked (paramiko's own pipelined mode drops write errors). Memory is
at most ``QUEUE_CHUNKS`` chunks plus ``MAX_IN_FLIGHT_BYTES`` per connection.

The download path (READs kept ahead of the reader) is :mod:`shared.destinations.sftp.reader`.
"""

from __future__ import annotations

import hashlib
import queue
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal, cast

from paramiko.message import Message
from paramiko.sftp import (
    CMD_CLOSE,
    CMD_HANDLE,
    CMD_OPEN,
    CMD_STATUS,
    CMD_WRITE,
    SFTP_FLAG_CREATE,
    SFTP_FLAG_EXCL,
    SFTP_FLAG_TRUNC,
    SFTP_FLAG_WRITE,
    SFTP_OK,
    SFTP_PERMISSION_DENIED,
)
from paramiko.sftp_attr import SFTPAttributes

from shared.destinations.base import ByteStream
from shared.destinations.sftp.blocks import BlockHasher
from shared.destinations.sftp.connect import SftpSession, int64, pipelined, raw_request, sftp_errors, status_of
from shared.errors import OffsiteError, PermanentError, TransientError
from shared.log import in_context

STOP_WAIT_S = 30.0  # how long a stopped read may take to end (a reply, or the socket's timeout)

CHUNK_BYTES = 1024 * 1024  # one read from the source; cut into WRITE requests of session.max_write
QUEUE_CHUNKS = 8  # chunks read ahead of the writers
MAX_IN_FLIGHT_BYTES = 8 * 1024 * 1024  # unacknowledged WRITE data per connection
# A pause drains what was read but is not on the server yet (queued or in flight), at the link's
# rate: that much is kept under DRAIN_S of the measured rate (START_BYTES until it is measured),
# so a pause on a slow link ends about DRAIN_S after the deadline, well inside the invocation's
# time after delivery.budget_s, instead of (16 MiB / rate) later.
DRAIN_S = 20.0
START_BYTES = 4 * 1024 * 1024
RATE_AFTER_S = 0.5  # acknowledged bytes over this long make a rate
_POLL_S = 0.5
_WRITE_HEAD = struct.Struct(">IBII")  # packet length, type, request id, handle length
_WRITE_AT = struct.Struct(">QI")  # offset, data length


class OpenRefused(Exception):
    """The server answered OPEN with a status other than permission denied (e.g. exists + EXCL)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"SFTP status {code}: {text}")
        self.code, self.text = code, text


def open_for_write(session: SftpSession, path: str, *, create: bool, exclusive: bool = False) -> bytes:
    """A write handle on ``path``: created and truncated (``create``), exclusively, or as it is.

    paramiko's SFTPFile is not used for writes: its close() swallows the server's status.
    """
    flags = SFTP_FLAG_WRITE
    if create:
        flags |= SFTP_FLAG_CREATE | SFTP_FLAG_TRUNC
    if exclusive:
        flags |= SFTP_FLAG_CREATE | SFTP_FLAG_EXCL
    with sftp_errors(session.partner, "opening", path):
        kind, msg = raw_request(session.sftp, CMD_OPEN, path, flags, SFTPAttributes())
        if kind == CMD_HANDLE:
            return msg.get_binary()
        code, text = status_of(kind, msg)
    if code == SFTP_PERMISSION_DENIED:
        raise PermanentError(f"sftp:{session.partner}: permission denied creating {path}")
    raise OpenRefused(code, text)


def close_handle(session: SftpSession, handle: bytes, path: str) -> None:
    """Close a write handle and check the status (some servers report write errors only here)."""
    with sftp_errors(session.partner, "closing", path):
        code, text = status_of(*raw_request(session.sftp, CMD_CLOSE, handle))
    if code != SFTP_OK:
        raise TransientError(f"sftp:{session.partner}: closing {path} failed (SFTP status {code}: {text})")


@dataclass(frozen=True)
class Streamed:
    """What a feeder passed on: bytes [0, ``size``) of the source, whose SHA-1 is ``sha1``;
    ``sent`` of them went to the writers (the rest were already at the destination)."""

    size: int
    sha1: str
    sent: int = 0
    blocks: tuple[str, ...] = ()  # per-block SHA-1s of those bytes (shared/destinations/sftp/blocks.py)


class StaleResume(TransientError):
    """The source does not start with the bytes a checkpointed partial file holds: the partial
    is dropped and the retry starts over."""


class ChunkFeeder:
    """Reads ``size`` bytes from ``source`` on a thread into a bounded queue; hashes them in order.

    Writers call :meth:`next_chunk` (thread-safe). A source error, a short or long source, or
    :meth:`abort` ends the stream; writers then get the error from :meth:`next_chunk`.

    Resuming: bytes before ``skip_to`` are already at the destination — they are read and
    hashed (the whole file's SHA-1 and its blocks) but not queued, and must match ``prefix_sha1``
    and ``prefix_blocks`` when given. Past ``deadline`` (time.monotonic()) no new
    chunk is read: the stream ends early at a chunk boundary (``finish().size < size``), after
    at least one chunk was sent, so every invocation makes progress.
    """

    def __init__(
        self,
        source: ByteStream,
        size: int,
        *,
        what: str,
        chunk_bytes: int = CHUNK_BYTES,
        skip_to: int = 0,
        prefix_sha1: str | None = None,
        prefix_blocks: tuple[str, ...] = (),
        deadline: float | None = None,
    ) -> None:
        self._source = source
        self._size = size
        self._what = what
        self._chunk = chunk_bytes
        self._skip_to = skip_to
        self._prefix_sha1 = prefix_sha1
        self._prefix_blocks = prefix_blocks
        self._blocks = BlockHasher()
        self._deadline = deadline
        self.sent = 0
        self._queue: queue.Queue[tuple[int, bytes] | None] = queue.Queue(maxsize=QUEUE_CHUNKS)
        self._sha1 = hashlib.sha1()
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=in_context(self._run), name=f"feed {what}", daemon=True)
        self.read = 0
        self._acked: dict[int, int] = {}  # bytes each writer knows are on the server
        self._first_sent: float | None = None

    def start(self) -> ChunkFeeder:
        self._thread.start()
        return self

    def _put(self, item: tuple[int, bytes] | None) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            while self.read < self._size:
                sending = self.read >= self._skip_to
                if sending and not self._room_to_send():
                    return  # out of time: the writers drain what was queued, the caller checkpoints
                data = self._source.read(min(self._chunk, self._size - self.read))
                if not data:
                    raise PermanentError(f"{self._what}: source gave {self.read} bytes, expected {self._size}")
                self._sha1.update(data)
                self._blocks.update(data)
                offset, self.read = self.read, self.read + len(data)
                if self.read <= self._skip_to:
                    if self.read == self._skip_to:
                        self._check_prefix()
                    continue  # already at the destination
                if offset < self._skip_to:  # pauses fall on chunk boundaries: another chunk size wrote it
                    raise StaleResume(f"{self._what}: resume point {self._skip_to} is inside a chunk; restarting")
                self.sent += len(data)
                self._first_sent = self._first_sent or time.monotonic()
                if not self._put((offset, data)):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the writers, who raise it
            self._error = exc
            self._stop.set()
        finally:
            self._put(None)  # wakes one writer; the others see the stop flag or the sentinel again

    def acknowledged(self, writer: int, done: int) -> None:
        """A writer's count of its bytes the server has acknowledged (at least)."""
        self._acked[writer] = done

    def _room_to_send(self) -> bool:
        """Wait until reading one more chunk keeps the drain short (DRAIN_S); False once past the
        deadline (after at least one chunk was sent, so every invocation makes progress)."""
        while not self._stop.is_set():
            now = time.monotonic()
            if self.sent and self._deadline is not None and now > self._deadline:
                return False
            acked = sum(self._acked.values())
            since = now - (self._first_sent or now)
            allowed = START_BYTES if since < RATE_AFTER_S else acked / since * DRAIN_S
            if self.sent - acked < max(allowed, self._chunk):
                return True
            time.sleep(_POLL_S / 50)
        return True  # aborted: the loop's next put ends it

    def _check_prefix(self) -> None:
        """The source's bytes before the resume point must be the ones the destination holds."""
        differs = self._prefix_sha1 is not None and self._sha1.hexdigest() != self._prefix_sha1
        if differs or (self._prefix_blocks and self._blocks.digests() != self._prefix_blocks):
            raise StaleResume(f"{self._what}: the source's first {self._skip_to} bytes differ from the checkpoint")

    def next_chunk(self, *, wait: bool = True) -> tuple[int, bytes] | None | Literal["empty"]:
        """The next (offset, bytes), or None at the end; raises the source's error. Without
        ``wait``: "empty" when nothing is queued yet."""
        while True:
            if self._error is not None:
                raise self._error
            if self._stop.is_set():
                return None  # aborted: the writer that aborted raises its own error
            try:
                item = self._queue.get(timeout=_POLL_S) if wait else self._queue.get_nowait()
            except queue.Empty:
                if not wait:
                    return "empty"
                continue
            if item is None:
                self._queue.put(None)  # leave the sentinel for the other writers
                if self._error is not None:
                    raise self._error
                return None
            return item

    def abort(self) -> None:
        self._stop.set()

    def stop(self, timeout_s: float = STOP_WAIT_S) -> None:
        """Abort and wait for the reading thread, so nobody reads the source once the caller closes it
        (two threads reading one pooled SFTP session would desynchronise it for its next user)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def finish(self) -> Streamed:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return Streamed(self.read, self._sha1.hexdigest(), self.sent, self._blocks.digests())


class _WriteAcks:
    """Counts unacknowledged WRITE requests and keeps the first failure status."""

    def __init__(self) -> None:
        self.pending = 0
        self.failure: tuple[int, str] | None = None

    def _async_response(self, kind: int, msg: Message, num: int) -> None:
        self.pending -= 1
        if kind != CMD_STATUS:
            self.failure = self.failure or (-1, f"unexpected response type {kind} to WRITE")
            return
        code = msg.get_int()
        if code != SFTP_OK and self.failure is None:
            self.failure = (code, msg.get_text() if len(msg.get_remainder()) >= 4 else "")


def _raise_failure(session: SftpSession, path: str, failure: tuple[int, str]) -> None:
    code, text = failure
    if code == SFTP_PERMISSION_DENIED:
        raise PermanentError(f"sftp:{session.partner}: writing {path}: permission denied")
    raise TransientError(f"sftp:{session.partner}: writing {path} failed (SFTP status {code}: {text})")


def _send_write(session: SftpSession, acks: _WriteAcks, handle: bytes, offset: int, data: memoryview) -> None:
    """One WRITE request, its reply going to ``acks``.

    Over an ``ssh`` process the header and the data go to the socket as they are (``sendmsg``):
    paramiko's own request copies the data four times on the way (into a Message, out of it, into
    the framed packet, ...), the largest part of offsite's own CPU per byte sent after SHA-1.
    """
    if session.ssh is None:
        pipelined(session.sftp)._async_request(acks, CMD_WRITE, handle, int64(offset), data)
        return
    sftp = cast(Any, session.sftp)
    with sftp._lock:  # request numbers as paramiko's _async_request takes them
        number = sftp.request_number
        sftp._expecting[number] = acks
        sftp.request_number += 1
    length = 1 + 4 + 4 + len(handle) + 8 + 4 + len(data)
    header = _WRITE_HEAD.pack(length, CMD_WRITE, number, len(handle)) + handle + _WRITE_AT.pack(offset, len(data))
    session.ssh.send_parts([header, data])


def write_chunks(session: SftpSession, handle: bytes, path: str, feeder: ChunkFeeder) -> int:
    """Send every chunk this writer takes from ``feeder`` as pipelined WRITEs; return bytes written.

    Waits for every acknowledgement before returning, so a returned writer's data is on the server.
    """
    sftp, step = session.sftp, session.max_write
    depth = max(4, MAX_IN_FLIGHT_BYTES // step)
    acks = _WriteAcks()
    written, sent, writer = 0, 0, threading.get_ident()
    with sftp_errors(session.partner, "writing", path):
        try:
            while (item := feeder.next_chunk(wait=acks.pending == 0)) is not None:
                if item == "empty":  # take an answer meanwhile: the feeder waits for room (DRAIN_S)
                    pipelined(sftp)._read_response()
                    feeder.acknowledged(writer, sent - acks.pending * step)
                    continue
                offset, data = item
                view = memoryview(data)
                for pos in range(0, len(data), step):
                    _send_write(session, acks, handle, offset + pos, view[pos : pos + step])
                    acks.pending += 1
                    sent += min(step, len(data) - pos)
                    while acks.pending > depth:
                        pipelined(sftp)._read_response()
                    if acks.failure:
                        _raise_failure(session, path, acks.failure)
                    feeder.acknowledged(writer, sent - acks.pending * step)  # each unanswered WRITE ≤ step
                written += len(data)
            while acks.pending > 0:
                pipelined(sftp)._read_response()
        except BaseException:
            feeder.abort()
            raise
    if acks.failure:
        _raise_failure(session, path, acks.failure)
    return written


def stream_to_handles(sessions: list[SftpSession], handles: list[bytes], path: str, feeder: ChunkFeeder) -> Streamed:
    """Write the feeder's bytes through every (session, open handle) pair in parallel.

    Each connection writes whole chunks at their own offsets, so the parts interleave in the file
    and the file is complete only when every writer has returned. Raises the first error.
    """
    errors: list[BaseException] = []

    def run(session: SftpSession, handle: bytes) -> None:
        try:
            write_chunks(session, handle, path, feeder)
        except BaseException as exc:  # noqa: BLE001 - collected, the first is raised below
            errors.append(exc)
            feeder.abort()

    helpers = [
        threading.Thread(target=in_context(run), args=(s, h), name=f"sftp write {i}", daemon=True)
        for i, (s, h) in enumerate(zip(sessions[1:], handles[1:], strict=True), start=1)
    ]
    for thread in helpers:
        thread.start()
    run(sessions[0], handles[0])
    for thread in helpers:
        thread.join()
    if errors:
        feeder.stop()
        first = next((e for e in errors if isinstance(e, OffsiteError)), errors[0])
        raise first
    return feeder.finish()
