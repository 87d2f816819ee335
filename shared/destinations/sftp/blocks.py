"""Per-block checksums of what was sent, so a resumed partial file can be proven block by block.

A transfer checksums its source in fixed blocks of :data:`BLOCK_BYTES` from byte 0 (the last one
may be shorter) and keeps the list in its checkpoint (about 12 bytes of JSON per MiB sent). A later
invocation reads the partial back block by block and compares: it can stop at its deadline and
continue where it stopped, and a block that differs marks where the file must be cut.

The checksum is CRC32C (:data:`BLOCK_CHECK`), the check GCS keeps for every object, computed by
google-crc32c's hardware path (~20 GB/s here): it finds a partial that is not what was sent
(cut, overwritten by another writer, damaged on disk); the delivered file is still checked by
its SHA-1, which the transfer computes on the way (the server's hash or verify's read-back).
SHA-1 per block, as before, was a second SHA-1 pass over every byte sent: 12 % of a
transfer's client CPU (docs/performance.md, "SFTP").
"""

from __future__ import annotations

import google_crc32c

BLOCK_BYTES = 1024 * 1024
BLOCK_CHECK = "crc32c"  # recorded with the blocks: a checkpoint with other checksums is not compared


def block_checksum(data: bytes | bytearray) -> str:
    """One block's checksum as the checkpoint keeps it (8 hex digits)."""
    return f"{google_crc32c.value(bytes(data)):08x}"


class BlockHasher:
    """Checksums of consecutive ``BLOCK_BYTES`` blocks of the bytes given to :meth:`update`."""

    def __init__(self) -> None:
        self._done: list[str] = []
        self._crc = 0
        self._filled = 0

    def update(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            take = min(len(view), BLOCK_BYTES - self._filled)
            # google-crc32c takes bytes only: a whole chunk within one block is passed as it is
            piece = data if take == len(data) and isinstance(data, bytes) else bytes(view[:take])
            self._crc = google_crc32c.extend(self._crc, piece)
            self._filled += take
            view = view[take:]
            if self._filled == BLOCK_BYTES:
                self._done.append(f"{self._crc:08x}")
                self._crc, self._filled = 0, 0

    def digests(self) -> tuple[str, ...]:
        """The blocks so far, the last one possibly short."""
        tail = (f"{self._crc:08x}",) if self._filled else ()
        return (*self._done, *tail)


def block_count(size: int) -> int:
    return -(-size // BLOCK_BYTES)
