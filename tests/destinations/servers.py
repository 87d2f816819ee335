"""One API server per xdist worker for a conformance backend: started on first use in a temp
directory, stopped (and the directory removed) at the end of the session."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar


class Stoppable(Protocol):
    def stop(self) -> None: ...


S = TypeVar("S", bound=Stoppable)
_servers: dict[str, Any] = {}


def shared_server(request: Any, name: str, start: Callable[[Path], S]) -> S:
    """The worker's server called ``name``, made with ``start(data_dir)`` the first time."""
    if name not in _servers:
        base = Path(tempfile.mkdtemp(prefix=f"offsite-{name}-conformance-"))
        _servers[name] = start(base / "data")
        request.config.add_cleanup(lambda: _stop(name, base))
    server: S = _servers[name]
    return server


def _stop(name: str, base: Path) -> None:
    server = _servers.pop(name, None)
    if server is not None:
        server.stop()
    shutil.rmtree(base, ignore_errors=True)
