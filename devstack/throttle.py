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

from devstack.ports import free_port

BLOCK = 16 * 1024


class ThrottledProxy:
    def __init__(self, target_port: int, bytes_per_s: float) -> None:
        self.target_port = target_port
        self.rate = float(bytes_per_s)
        self.port = free_port()
        self.sent = 0
        self._lock = threading.Lock()
        self._next_free = time.monotonic()  # when the shared link may carry the next block
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._closed = False
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name=f"throttle-{self.port}", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
                server = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                continue
            self._sockets += [client, server]
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

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()
