"""A loopback TCP proxy that limits the upload rate: a slow partner link on one machine.

``ThrottledProxy(target_port, bytes_per_s)`` accepts on its own port and forwards to
127.0.0.1:target_port; bytes from client to server pass at most ``bytes_per_s`` (shared by
all connections, a token bucket), replies pass unthrottled. ``sent`` counts the bytes that
went upstream (payload plus protocol overhead). Used by bench/resume_bench.py.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from devstack.tcp_proxy import LoopbackProxy

BLOCK = 16 * 1024


class ThrottledProxy(LoopbackProxy):
    def __init__(self, target_port: int, bytes_per_s: float) -> None:
        self.rate = float(bytes_per_s)
        self.sent = 0
        self._next_free = time.monotonic()  # when the shared link may carry the next block
        super().__init__(target_port, "throttle")

    def connected(self, client: socket.socket, server: socket.socket) -> None:
        threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
        threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _wait_for_link(self, size: int) -> None:
        with self._lock:
            start = max(self._next_free, time.monotonic())
            self._next_free = start + size / self.rate
            self.sent += size
        delay = start + size / self.rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def _pump(self, src: socket.socket, dst: socket.socket, throttled: bool) -> None:
        try:
            while data := src.recv(BLOCK):
                if throttled:
                    self._wait_for_link(len(data))
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
