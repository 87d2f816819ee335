"""Health probes when a port chosen free is taken by someone else before our server binds it.

Seen in CI: a private stack's HTTP component probed a port that another stack's sshd had bound
in the meantime; the SSH banner raised ``BadStatusLine`` out of the probe, so the start failed
instead of planning new ports.
"""

from __future__ import annotations

import os
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from devstack import procs
from devstack.errors import StackError
from devstack.health import probe, wait_ready
from devstack.ports import free_port
from devstack.stack import _lost_port_race
from devstack.state import ComponentInfo


class BannerServer(socketserver.ThreadingTCPServer):
    """A TCP server on a free loopback port that greets every connection with ``banner``."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, banner: bytes) -> None:
        self.banner = banner
        self.greeted = 0
        super().__init__(("127.0.0.1", free_port()), _Greeting)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _Greeting(socketserver.BaseRequestHandler):
    server: BannerServer

    def handle(self) -> None:
        self.server.greeted += 1  # before the banner: the probe may return as soon as it reads it
        self.request.sendall(self.server.banner)


@pytest.fixture
def sshd_like() -> Iterator[BannerServer]:
    server = BannerServer(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10\r\n")
    yield server
    server.close()


def _component(name: str, port: int, pid: int, health_url: str, log: Path) -> ComponentInfo:
    return ComponentInfo(name, port, pid, procs.start_time(psutil.Process(pid)), health_url, str(log))


def test_an_http_probe_answered_by_an_ssh_banner_is_not_ready(sshd_like: BannerServer, tmp_path: Path) -> None:
    comp = _component("box", sshd_like.port, os.getpid(), f"http://127.0.0.1:{sshd_like.port}/health", tmp_path / "x")
    assert probe(comp, timeout_s=2.0) is False
    assert sshd_like.greeted >= 1, "the probe never reached the server: nothing was tested"


def test_an_ssh_probe_answered_by_http_is_not_ready(tmp_path: Path) -> None:
    server = BannerServer(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    try:
        comp = _component("sftp", server.port, os.getpid(), f"ssh://127.0.0.1:{server.port}", tmp_path / "x")
        assert probe(comp, timeout_s=2.0) is False
        assert server.greeted >= 1
    finally:
        server.close()


def test_a_server_that_lost_its_port_to_an_sshd_is_a_lost_port_race(sshd_like: BannerServer, tmp_path: Path) -> None:
    """The whole chain: our HTTP server cannot bind the port the sshd holds and exits; the wait
    reports it with the log tail that makes start_stack plan new ports."""
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(sshd_like.port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        comp = _component("box", sshd_like.port, server.pid, f"http://127.0.0.1:{sshd_like.port}/", log)
        with pytest.raises(StackError) as caught:
            wait_ready(comp, time.monotonic() + 60, "run it again")
        assert "exited during start" in str(caught.value)
        assert _lost_port_race(caught.value), caught.value.log_tail
    finally:
        server.kill()
        server.wait(timeout=10)
