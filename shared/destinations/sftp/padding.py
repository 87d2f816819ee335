"""Random packet padding without a system call per SSH packet.

paramiko pads every packet it sends under a non-counter cipher (AES-GCM included) with
``os.urandom(n)``, n ≤ 255: one ``getrandom`` system call per 32 KiB packet. Profiling a 200 MB
SFTP upload (docs/performance.md, "SFTP") put 13 % of the sender's time there, more than the
AES-GCM encryption itself. :class:`PooledRandom` hands out the same kernel randomness in slices
of a 64 KiB ``os.urandom`` block, each byte used once, so the padding stays as random as before
while the calls drop 250-fold. Only paramiko's packetizer module sees it (:func:`install`).
"""

from __future__ import annotations

import os
import threading
import types
from typing import Any

POOL_BYTES = 64 * 1024


class PooledRandom:
    """``urandom(n)`` served from a buffer of ``os.urandom`` bytes; never hands out a byte twice."""

    def __init__(self, pool_bytes: int = POOL_BYTES) -> None:
        self._size = pool_bytes
        self._pool = b""
        self._pos = 0
        self._lock = threading.Lock()

    def urandom(self, n: int) -> bytes:
        if n > self._size:
            return os.urandom(n)
        with self._lock:
            if self._pos + n > len(self._pool):
                self._pool, self._pos = os.urandom(self._size), 0
            chunk = self._pool[self._pos : self._pos + n]
            self._pos += n
            return chunk


class _OsWithPooledRandom(types.ModuleType):
    """The ``os`` module as paramiko.packet sees it: everything from ``os`` but ``urandom``."""

    def __init__(self, pool: PooledRandom) -> None:
        super().__init__("os")
        self.urandom = pool.urandom

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


def install() -> None:
    """Give paramiko's packetizer the pooled source (idempotent; other modules keep ``os``)."""
    import paramiko.packet

    packet: Any = paramiko.packet  # its ``os`` import is not in the stubs
    if not isinstance(packet.os, _OsWithPooledRandom):
        packet.os = _OsWithPooledRandom(PooledRandom())
