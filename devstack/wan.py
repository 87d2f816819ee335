"""A loopback TCP proxy that makes a local server look as far away as a cloud API.

On loopback a round trip costs nothing and one connection carries gigabytes a second, so a
client that waits a round trip per request (sequential upload parts) looks as fast as one that
keeps several requests in flight. Across the internet it is not. ``WanProxy`` puts, in each
direction of each connection it forwards:

- a one-way delay of ``rtt_s / 2`` (every request/response pair costs at least one ``rtt_s``);
- a bandwidth cap of ``bytes_per_s`` per connection and direction (a single TCP stream's
  ceiling over a long path: window / RTT, shaping, the far end's per-stream limit);
- ``setup_rtts`` round trips before a new connection's first byte leaves (TCP handshake plus
  TLS 1.3: 2), so a client that reuses connections gains what it would gain on the internet.

The model of a link is :class:`Link`: a byte chunk that arrives at ``t`` starts on the wire
when the link is free, takes ``size / bytes_per_s`` and reaches the far end ``delay_s`` later.
Queues are bounded (``QUEUE_CHUNKS``), so a fast sender is held back as TCP flow control
would, instead of the proxy buffering a whole upload.

    with WanProxy(box.port, rtt_s=0.06, bytes_per_s=20e6) as wan:
        url = wan.url   # point the client here

Used by bench/box_bench.py (``--wan``); profiles and their sources are in docs/performance.md.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from dataclasses import dataclass

from devstack.tcp_proxy import LoopbackProxy

CHUNK = 64 * 1024
QUEUE_CHUNKS = 64  # 4 MiB in flight per direction, about one bandwidth-delay product at 20 MB/s, 60 ms


@dataclass(frozen=True)
class WanProfile:
    """A network path: round-trip time, per-connection bandwidth, round trips to open a connection."""

    name: str
    rtt_s: float
    bytes_per_s: float
    setup_rtts: int = 2

    def describe(self) -> str:
        return f"{self.name}: RTT {self.rtt_s * 1000:g} ms, {self.bytes_per_s / 1e6:g} MB/s per connection"


# Defaults and their sources: docs/performance.md, "A network like Box's".
BOX_FROM_GCP = WanProfile("box-from-gcp", rtt_s=0.06, bytes_per_s=20e6)


@dataclass
class Link:
    """One direction of one connection: serialisation at ``bytes_per_s``, then ``delay_s``."""

    bytes_per_s: float
    delay_s: float
    free_at: float = 0.0  # when the wire finishes the chunk before

    def schedule(self, size: int, now: float) -> float:
        """When a chunk of ``size`` bytes that arrived at ``now`` reaches the far end."""
        start = max(now, self.free_at)
        self.free_at = start + size / self.bytes_per_s
        return self.free_at + self.delay_s


class WanProxy(LoopbackProxy):
    """Accepts on its own loopback port, forwards each connection to 127.0.0.1:``target_port``
    through two :class:`Link` s (module docstring). ``bytes_up`` / ``bytes_down`` count payload."""

    def __init__(self, target_port: int, profile: WanProfile = BOX_FROM_GCP) -> None:
        self.profile = profile
        self.bytes_up = 0
        self.bytes_down = 0
        super().__init__(target_port, "wan")

    def connected(self, client: socket.socket, server: socket.socket) -> None:
        for sock in (client, server):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        one_way = self.profile.rtt_s / 2
        now = time.monotonic()
        up = Link(self.profile.bytes_per_s, one_way, free_at=now + self.profile.setup_rtts * self.profile.rtt_s)
        down = Link(self.profile.bytes_per_s, one_way)
        self._pipe(client, server, up, upstream=True)
        self._pipe(server, client, down, upstream=False)

    def _pipe(self, src: socket.socket, dst: socket.socket, link: Link, *, upstream: bool) -> None:
        """Two threads per direction: one reads and stamps each chunk's arrival time at the far
        end, the other sleeps until then and writes it (so chunks overlap on the 'wire')."""
        chunks: queue.Queue[tuple[float, bytes] | None] = queue.Queue(maxsize=QUEUE_CHUNKS)

        def read() -> None:
            try:
                while data := src.recv(CHUNK):
                    chunks.put((link.schedule(len(data), time.monotonic()), data))
                    with self._lock:
                        if upstream:
                            self.bytes_up += len(data)
                        else:
                            self.bytes_down += len(data)
            except OSError:
                pass
            finally:
                chunks.put(None)

        def write() -> None:
            try:
                while (item := chunks.get()) is not None:
                    due, data = item
                    if (wait := due - time.monotonic()) > 0:
                        time.sleep(wait)
                    dst.sendall(data)
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)
            except OSError:
                with contextlib.suppress(OSError):
                    src.close()

        name = f"wan-{self.port}-{'up' if upstream else 'down'}"
        threading.Thread(target=read, name=name + "-read", daemon=True).start()
        threading.Thread(target=write, name=name + "-write", daemon=True).start()
