"""Is a component up? Probes by URL scheme, and a wait that fails fast and says why."""

from __future__ import annotations

import http.client
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from devstack import procs
from devstack.errors import StackError
from devstack.state import ComponentInfo

# How long `dev up` / `dev restart` wait for components to answer. Waiting ends as soon as they
# do, so a generous deadline costs nothing on a quick machine and spares a loaded one (CI runs
# several stacks on two cores) a start that fails only for being slow.
START_TIMEOUT_S = 180.0


def probe(comp: ComponentInfo, timeout_s: float = 2.0) -> bool:
    """One health check: HTTP 2xx (any status for functions) or an SSH banner."""
    if comp.health_url.startswith("ssh://"):
        host, port = comp.health_url[len("ssh://") :].rsplit(":", 1)
        try:
            with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
                sock.settimeout(timeout_s)
                return sock.recv(64).startswith(b"SSH-")
        except OSError:
            return False
    try:
        with urllib.request.urlopen(comp.health_url, timeout=timeout_s) as resp:
            return 200 <= resp.status < 300 or comp.any_status
    except urllib.error.HTTPError:
        return comp.any_status
    except (urllib.error.URLError, OSError, http.client.HTTPException):
        # HTTPException: something that is not HTTP answers the port (another stack's sshd took
        # it before our server bound it); our server then dies with "address already in use",
        # which start_stack answers by planning new ports.
        return False


def live_health(comp: ComponentInfo) -> str:
    """ok | unhealthy (running, not answering) | dead (process gone)."""
    if not procs.is_alive(comp.pid, comp.create_time):
        return "dead"
    return "ok" if probe(comp) else "unhealthy"


def wait_ready(comp: ComponentInfo, deadline: float, fix_if_dead: str) -> None:
    """Wait until ``comp`` answers on its own port; StackError (with log tail) otherwise."""
    while True:
        proc = procs.process(comp.pid, comp.create_time)
        if proc is None:
            raise StackError(
                f"{comp.name} exited during start (log: {comp.log})",
                fix_if_dead,
                log_tail=procs.log_tail(Path(comp.log)),
            )
        if probe(comp, timeout_s=1.0):
            if comp.port in procs.listening_ports(comp.pid, comp.create_time):
                comp.health = "ok"
                return
            raise StackError(
                f"{comp.name}: port {comp.port} is answered by another process, not by pid {comp.pid}",
                "run the command again (free ports are chosen anew) or pin another port",
                log_tail=procs.log_tail(Path(comp.log)),
            )
        if time.monotonic() > deadline:
            raise StackError(
                f"{comp.name} not healthy at {comp.health_url} before the start deadline (log: {comp.log})",
                "see the log tail below; a slow machine can pass a longer --timeout",
                log_tail=procs.log_tail(Path(comp.log)),
            )
        time.sleep(0.1)
