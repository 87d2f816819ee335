"""A loopback TCP proxy that can cut its connections: the "network fails mid-upload" of the tests.

``cut_after_bytes``: every connection is cut (both sockets closed) once that many bytes went from
client to server, so a cut lands mid-upload deterministically, without sleeps or timing;
``cut_reply_after_bytes`` does the same for bytes from server to client (mid-download).
``cut()`` closes every open connection now; ``cut_after_bytes = None`` stops cutting.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from devstack.ports import free_port


class CuttingProxy:
    def __init__(
        self, target_port: int, *, cut_after_bytes: int | None = None, cut_reply_after_bytes: int | None = None
    ) -> None:
        self.target_port = target_port
        self.cut_after_bytes = cut_after_bytes
        self.cut_reply_after_bytes = cut_reply_after_bytes
        self.port = free_port()
        self.cuts = 0
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, name=f"proxy-{self.port}", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, server))
            up, down = self.cut_after_bytes, self.cut_reply_after_bytes
            threading.Thread(target=self._pump, args=(client, server, up, (client, server)), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, down, (client, server)), daemon=True).start()

    def _pump(
        self, src: socket.socket, dst: socket.socket, limit: int | None, pair: tuple[socket.socket, socket.socket]
    ) -> None:
        sent = 0
        try:
            while data := src.recv(65536):
                if limit is not None and sent + len(data) > limit:
                    self._close_pair(pair, counted=True)
                    return
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        self._close_pair(pair)

    def _close_pair(self, pair: tuple[socket.socket, socket.socket], counted: bool = False) -> None:
        with self._lock:
            if pair in self._pairs:
                self._pairs.remove(pair)
                if counted:
                    self.cuts += 1
        for sock in pair:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def cut(self) -> None:
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            self._close_pair(pair, counted=True)

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.cut()
