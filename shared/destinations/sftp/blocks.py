"""Per-block SHA-1s of what was sent, so a resumed partial file can be proven block by block.

A transfer hashes its source in fixed blocks of :data:`BLOCK_BYTES` from byte 0 (the last one
may be shorter) and keeps the list in its checkpoint (41 bytes of JSON per MiB sent). A later
invocation reads the partial back block by block and compares: it can stop at its deadline and
continue where it stopped, and a block that differs marks where the file must be cut.
"""

from __future__ import annotations

import hashlib

BLOCK_BYTES = 1024 * 1024


class BlockHasher:
    """SHA-1s of consecutive ``BLOCK_BYTES`` blocks of the bytes given to :meth:`update`."""

    def __init__(self) -> None:
        self._done: list[str] = []
        self._current = hashlib.sha1()
        self._filled = 0

    def update(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            take = min(len(view), BLOCK_BYTES - self._filled)
            self._current.update(view[:take])
            self._filled += take
            view = view[take:]
            if self._filled == BLOCK_BYTES:
                self._done.append(self._current.hexdigest())
                self._current, self._filled = hashlib.sha1(), 0

    def digests(self) -> tuple[str, ...]:
        """The blocks so far, the last one possibly short."""
        tail = (self._current.hexdigest(),) if self._filled else ()
        return (*self._done, *tail)


def block_count(size: int) -> int:
    return -(-size // BLOCK_BYTES)
