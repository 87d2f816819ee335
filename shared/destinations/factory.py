"""Destinations built from config by id (dlt's factories): one table of backends.

Adding a destination kind = a backend package exposing ``from_config(DestinationId, Config)``,
a loader and one line in :data:`BACKENDS`, the conformance suite (tests/destinations) and, if a function
delivers to it, the kind in that function's ``serves`` (shared/topology.py).

Backends are imported lazily, only when a destination of that kind is opened: a function that
only talks to SFTP never imports the Box SDK, and the verify engine (which gets a Destination)
never imports this module at all. The loaders import their module with a plain ``import``
statement (not by name) so `offsite package` sees each backend's libraries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType

from shared.config import Config
from shared.destinations.base import Destination
from shared.errors import ConfigError
from shared.ids import DestinationId


def _box() -> ModuleType:
    from shared.destinations.box import destination

    return destination


def _sftp() -> ModuleType:
    from shared.destinations.sftp import destination

    return destination


def _drive() -> ModuleType:
    from shared.destinations.drive import destination

    return destination


def _memory() -> ModuleType:
    from shared.destinations import memory

    return memory


BACKENDS: dict[str, Callable[[], ModuleType]] = {"box": _box, "sftp": _sftp, "drive": _drive, "memory": _memory}
"""Destination kind → loader of the module with ``from_config(destination_id, config) -> Destination``."""


def open_destination(destination: DestinationId | str, config: Config) -> Destination:
    """The destination as configured. ConfigError when it is not configured.

    The caller closes it (see :func:`opened`); pooled resources (Box's token and folder cache,
    SFTP session pools) stay warm for the process.
    """
    dest_id = destination if isinstance(destination, DestinationId) else parse_id(destination, config)
    loader = BACKENDS.get(dest_id.kind)
    if loader is None:
        raise ConfigError(f"destination {str(dest_id)!r}: no backend for kind {dest_id.kind!r}")
    backend = loader()
    opened_destination: Destination = backend.from_config(dest_id, config)
    return opened_destination


def parse_id(name: str, config: Config) -> DestinationId:
    """``name`` as a DestinationId; ConfigError naming the configured destinations otherwise."""
    try:
        return DestinationId.parse(name)
    except ValueError as exc:
        known = ", ".join(config.destination_names()) or "none configured"
        raise ConfigError(f"destination {exc} (configured: {known})") from None


@contextmanager
def opened(destination: DestinationId | str, config: Config) -> Iterator[Destination]:
    """``open_destination`` for the length of a ``with`` block, closing it after."""
    handle = open_destination(destination, config)
    try:
        yield handle
    finally:
        handle.close()
