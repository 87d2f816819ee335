"""A link that stops taking bytes for longer than the connect timeout while a part is sent.

requests sends a request's body under its *connect* timeout (10 s); a partner link that stalls
a send for longer used to fail the part with a ConnectionError and send it again. Upload bodies
get the request timeout (``destinations.box.timeout_s``) instead: the stalled part finishes and
no byte crosses the link twice.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import time
from collections.abc import Iterator

import pytest

from devstack.boxapi import BoxApiServer
from devstack.throttle import ThrottledProxy
from shared.config import BoxDestination as BoxSettings
from shared.destinations.box.destination import BoxDestination
from shared.destinations.box.http import CONNECT_TIMEOUT_S

MB = 1_000_000
SIZE = 20 * MB + 12_345  # an upload session of three 8 MiB parts
STALL_S = CONNECT_TIMEOUT_S + 3


class StallingProxy(ThrottledProxy):
    """Forwards to the Box server unthrottled; once ``stall_after`` bytes went upstream, reads
    nothing from the client for ``stall_s`` (its socket buffers fill and the sender blocks).
    ``sent`` counts the bytes that went upstream."""

    def __init__(self, target_port: int, stall_after: int, stall_s: float) -> None:
        self.stalled = False
        self.stall_after, self.stall_s = stall_after, stall_s
        super().__init__(target_port, bytes_per_s=float("inf"))
        # Small receive buffers, so a stalled read blocks the sender soon.
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)

    def _wait_for_link(self, size: int) -> None:
        with self._lock:
            self.sent += size
            stall = not self.stalled and self.sent >= self.stall_after
            self.stalled = self.stalled or stall
        if stall:
            time.sleep(self.stall_s)


@pytest.fixture
def proxy(box_server: BoxApiServer) -> Iterator[StallingProxy]:
    port = int(box_server.upload_url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
    with StallingProxy(port, stall_after=1 * MB, stall_s=STALL_S) as stalling:
        yield stalling


def test_a_part_stalled_longer_than_the_connect_timeout_is_sent_once(
    settings: BoxSettings, box_server: BoxApiServer, proxy: StallingProxy
) -> None:
    port = box_server.upload_url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]
    upload_url = box_server.upload_url.replace(f":{port}", f":{proxy.port}", 1)
    box = BoxDestination(settings.model_copy(update={"upload_url": upload_url, "parallel_parts": 1}))
    data = os.urandom(SIZE)
    try:
        result = box.put("stall/big.bin", io.BytesIO(data), SIZE)
    finally:
        box.http.close()
    assert proxy.stalled, "the link never stalled: nothing was tested"
    assert result.status == "uploaded" and result.sha1 == hashlib.sha1(data).hexdigest()
    overhead = 64 * 1024  # request lines and headers of the session's calls
    assert proxy.sent <= SIZE + overhead, f"{proxy.sent - SIZE} bytes crossed the link twice"
