"""What the local Box and Drive API servers share: a subprocess on a free loopback port, and
their admin API (faults, request counts, settings).

A subclass names its module and its command line; ``start`` runs ``python -m <module>`` in its
own session, waits for ``/health`` (retrying on a port race) and ``stop`` ends it by pid.
``attach(base_url)`` talks to a server some other process started (no process is owned).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Self

from devstack import procs
from devstack.ports import free_port, wait_http_ok


class AdminError(RuntimeError):
    """An admin API call failed; the message names the call and the server's answer."""


class LocalApiServer:
    """One ``python -m <module>`` process serving an API and ``/_admin`` on ``base_url``."""

    module = ""
    """The package run with ``python -m``."""
    title = ""
    """How errors name the server ("Box API server")."""

    def __init__(
        self, data_dir: Path, *, port: int | None = None, log_path: Path | None = None, start_timeout_s: float = 30.0
    ) -> None:
        self.data_dir = Path(data_dir)
        self.log_path = log_path or self.data_dir.with_name(self.data_dir.name + ".log")
        self._wanted_port = port
        self._start_timeout_s = start_timeout_s
        self._spawned: procs.Spawned | None = None
        self._attached_url: str | None = None
        self.port = 0

    @classmethod
    def attach(cls, base_url: str) -> Self:
        """The admin API of a server already running at ``base_url`` (``start``/``stop`` not used)."""
        server = cls.__new__(cls)
        LocalApiServer.__init__(server, Path(os.devnull))
        server._attached_url = base_url.rstrip("/")
        return server

    @property
    def base_url(self) -> str:
        return self._attached_url or f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._spawned is None else self._spawned.pid

    # -- lifecycle ---------------------------------------------------------------------------

    def _arguments(self) -> list[str]:
        """The command line after ``--port N --data-dir DIR``."""
        return []

    def _environment(self) -> dict[str, str] | None:
        """The server's environment (None: ours); secrets go here, never on the command line."""
        return None

    def _started(self) -> None:
        """Called once ``/health`` answers (e.g. to register what every test needs)."""

    def start(self) -> Self:
        """Start the process and wait until ``/health`` answers; retries on a port race."""
        if self._spawned is not None:
            raise RuntimeError(f"{self.title} already started")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        last: Exception | None = None
        for _ in range(1 if self._wanted_port else 3):
            port = self._wanted_port or free_port()
            argv = [sys.executable, "-m", self.module, "--host", "127.0.0.1", "--port", str(port)]
            argv += ["--data-dir", str(self.data_dir), *self._arguments()]
            spawned = procs.spawn(self.module, argv, log=self.log_path, env=self._environment())
            try:
                wait_http_ok(
                    f"http://127.0.0.1:{port}/health",
                    self._start_timeout_s,
                    is_alive=lambda s=spawned: s.popen is not None and s.popen.poll() is None,
                )
            except (RuntimeError, TimeoutError) as exc:
                last = exc
                procs.stop(spawned.pid, spawned.create_time)
                continue
            self._spawned, self.port = spawned, port
            self._started()
            return self
        raise RuntimeError(
            f"{self.title} did not start ({last}); log {self.log_path}:\n{procs.log_tail(self.log_path)}"
        )

    def stop(self) -> None:
        if self._spawned is not None:
            procs.stop(self._spawned.pid, self._spawned.create_time)
            self._spawned = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- admin API ---------------------------------------------------------------------------

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base_url}/_admin{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise AdminError(f"{method} /_admin{path} -> {exc.code}: {exc.read().decode(errors='replace')}") from exc

    def add_fault(self, operation: str, action: str, **params: Any) -> dict[str, Any]:
        """Inject a fault (see :mod:`devstack.faults` for actions and parameters)."""
        fault: dict[str, Any] = self.admin("POST", "/faults", {"operation": operation, "action": action, **params})[
            "faults"
        ][0]
        return fault

    def clear_faults(self) -> None:
        self.admin("DELETE", "/faults")

    def faults(self) -> list[dict[str, Any]]:
        faults: list[dict[str, Any]] = self.admin("GET", "/faults")["faults"]
        return faults

    def request_counts(self) -> dict[str, int]:
        counts: dict[str, int] = self.admin("GET", "/requests")["counts"]
        return counts

    def clear_requests(self) -> None:
        self.admin("DELETE", "/requests")

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change run-time settings (each server documents which)."""
        answer: dict[str, Any] = self.admin("POST", "/config", settings)
        return answer


# -- the server side: ``python -m <module>`` ---------------------------------------------------


def argument_parser(module: str, description: str, data_dir_help: str) -> argparse.ArgumentParser:
    """The options every local API server takes: --host, --port, --data-dir, --token-ttl, --log-level."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback only by default)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--data-dir", type=Path, required=True, help=data_dir_help)
    parser.add_argument("--token-ttl", type=float, default=3600.0, help="lifetime of issued access tokens, seconds")
    parser.add_argument("--log-level", default="warning")
    return parser


def serve(app: Any, host: str, port: int, log_level: str) -> None:
    """Serve ``app`` in this process until it is stopped.

    One process, one event loop: the servers keep their state (faults, sessions in progress) in
    memory. uvicorn's "auto" loop and http pick uvloop and httptools when installed (much
    faster than h11).
    """
    import uvicorn

    uvicorn.run(
        app,
        host=host,
        port=port,
        lifespan="on",
        log_level=log_level,
        access_log=False,
        timeout_keep_alive=75,
        proxy_headers=False,
    )
