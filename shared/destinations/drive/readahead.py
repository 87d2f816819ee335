"""The source read one chunk ahead: while a chunk is uploaded, the next one is read (SFTP, GCS)
on one helper thread, so reading and sending overlap instead of taking turns. At most two
chunks are in memory; the reads stay in order on one thread, and hashing stays with the caller.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

from shared.destinations.base import ByteStream
from shared.errors import PermanentError
from shared.log import in_context


def read_exactly(source: ByteStream, size: int, name: str) -> bytes:
    """Exactly ``size`` bytes from ``source``; PermanentError when it ends early."""
    parts, got = [], 0
    while got < size:
        block = source.read(size - got)
        if not block:
            raise PermanentError(f"{name}: the source ended after {got} bytes of a {size}-byte read")
        parts.append(block)
        got += len(block)
    return b"".join(parts)


class ReadAhead:
    """``ask(n)`` starts reading the next ``n`` bytes; ``take()`` returns them. ``close()`` waits
    for a read still running (its bytes are dropped) and stops the thread."""

    def __init__(self, source: ByteStream, name: str) -> None:
        self._source, self._name = source, name
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="drive-read-ahead")
        self._pending: Future[bytes] | None = None

    def ask(self, size: int) -> None:
        assert self._pending is None, "one read ahead at a time"
        self._pending = self._pool.submit(in_context(read_exactly), self._source, size, self._name)

    def take(self) -> bytes:
        pending, self._pending = self._pending, None
        assert pending is not None, "take() without ask()"
        return pending.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._pending = None
