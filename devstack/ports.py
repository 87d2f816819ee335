"""Free loopback ports, readiness waits and the --host/--port options of locally started servers."""

from __future__ import annotations

import argparse
import random
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

LISTEN_RANGE_FLOOR = 20000


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def server_arguments(doc: str | None) -> argparse.ArgumentParser:
    """The options of a small local server process (``python -m devstack.<server>``): ``--host``
    (loopback by default) and ``--port`` (required; the plan chooses it); its description is the
    first line of the module's ``doc``. The server adds its own options."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    return parser


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now.

    Chosen below the kernel's ephemeral range: a port handed out by ``bind(0)`` comes from that
    range, and any outgoing connection on the machine may take it in the seconds before our
    server binds it (seen as a server dying with "address already in use" under parallel tests).
    """
    low, _high = _ephemeral_range()
    floor, ceiling = (LISTEN_RANGE_FLOOR, low - 1) if low - 1 > LISTEN_RANGE_FLOOR + 1000 else (1024, low - 1)
    for _ in range(200):
        port = random.randint(floor, ceiling)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # a crowded range: let the kernel pick
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def wait_http_ok(url: str, timeout_s: float = 30.0, *, is_alive=lambda: True) -> None:
    """Poll ``url`` until it answers 2xx; raise TimeoutError naming the url otherwise.

    ``is_alive`` lets the caller stop waiting as soon as the server process died.
    """
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if not is_alive():
            raise RuntimeError(f"server for {url} exited before it became ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if 200 <= resp.status < 300:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"{url} not ready after {timeout_s:.0f}s (last error: {last})")


def wait_tcp(port: int, timeout_s: float = 30.0, *, host: str = "127.0.0.1", is_alive=lambda: True) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not is_alive():
            raise RuntimeError(f"server on {host}:{port} exited before it became ready")
        if port_in_use(port, host):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{host}:{port} not accepting connections after {timeout_s:.0f}s")
