"""shared/destinations/sftp/padding.py: paramiko's packet padding from a pool of kernel randomness."""

from __future__ import annotations

import os

import paramiko.packet

from shared.destinations.sftp.padding import POOL_BYTES, PooledRandom, install


def test_pool_hands_out_each_byte_once_and_refills(monkeypatch) -> None:
    calls: list[int] = []
    real = os.urandom

    def counting(n: int) -> bytes:
        calls.append(n)
        return real(n)

    monkeypatch.setattr(os, "urandom", counting)
    pool = PooledRandom(pool_bytes=1024)
    pieces = [pool.urandom(100) for _ in range(20)]  # 2,000 bytes: the pool is drawn twice
    assert all(len(p) == 100 for p in pieces)
    assert calls == [1024, 1024]
    block = b"".join(pieces[:10])
    assert len({block[i : i + 16] for i in range(0, 1000 - 16, 16)}) == len(range(0, 1000 - 16, 16))
    assert len(pool.urandom(5000)) == 5000 and calls[-1] == 5000  # larger than the pool: straight through


def test_install_touches_only_paramikos_packetizer() -> None:
    install()
    install()
    assert paramiko.packet.os.urandom is not os.urandom
    assert paramiko.packet.os.getpid() == os.getpid()  # the rest of os is os
    assert len(paramiko.packet.os.urandom(255)) == 255
    assert POOL_BYTES >= 255 * 64
