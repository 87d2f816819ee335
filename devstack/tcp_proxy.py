"""The loopback TCP proxy both link models build on (devstack/throttle.py, devstack/wan.py).

A subclass says what happens to one accepted connection (:meth:`LoopbackProxy.connected`); this
class listens on a free loopback port, connects each client to 127.0.0.1:``target_port`` and
closes every socket on :meth:`close` (or leaving the ``with`` block).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Self

from devstack.ports import free_port


class LoopbackProxy:
    def __init__(self, target_port: int, name: str) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.connections = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._closed = False
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name=f"{name}-{self.port}", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True
        for sock in [self._listener, *self._sockets]:
            with contextlib.suppress(OSError):
                sock.close()

    def connected(self, client: socket.socket, server: socket.socket) -> None:
        """Start forwarding between a new client and its server connection (threads of its own)."""
        raise NotImplementedError

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
                server = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                continue
            with self._lock:
                self._sockets += [client, server]
                self.connections += 1
            self.connected(client, server)
