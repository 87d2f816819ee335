"""Destinations built from config by routing name (dlt's factories): ``box``, ``sftp:NAME``, ``memory``.

Backends are imported lazily, only when a destination of that kind is opened: a function that
only talks to SFTP never imports the Box SDK, and the verify engine (which gets a Destination)
never imports this module at all.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

from shared.config import Config
from shared.destinations.base import Destination
from shared.errors import ConfigError

SFTP_PREFIX = "sftp:"


def open_destination(name: str, config: Config) -> Destination:
    """The destination ``name`` as configured. ConfigError when it is not configured.

    The caller closes it (see :func:`opened`); Box destinations are shared per process (their
    token and folder cache), so closing one is a no-op.
    """
    if name == "box":
        if config.destinations.box is None:
            raise ConfigError("destinations.box: 'box' is routed to but no Box destination is configured")
        from shared.destinations.box import destination as box

        return box.for_settings(config.destinations.box)
    if name.startswith(SFTP_PREFIX):
        partner_name = name[len(SFTP_PREFIX) :]
        partner = config.sftp_partner(partner_name)
        from shared.destinations.sftp import destination as sftp

        return sftp.SftpDestination(partner_name, partner)
    if name == "memory":
        return memory_destination()
    known = ", ".join(config.destination_names()) or "none configured"
    raise ConfigError(f"destination {name!r} is not 'box', 'sftp:NAME' or 'memory' (configured: {known})")


@contextmanager
def opened(name: str, config: Config) -> Iterator[Destination]:
    """``open_destination`` for the length of a ``with`` block, closing connections after."""
    destination = open_destination(name, config)
    try:
        yield destination
    finally:
        close = getattr(destination, "close", None)
        if callable(close) and name.startswith(SFTP_PREFIX):
            close()


def is_flat(name: str, config: Config) -> bool:
    """Whether the destination puts files straight into its directory (SFTP ``flat: true``)."""
    if name.startswith(SFTP_PREFIX):
        return config.sftp_partner(name[len(SFTP_PREFIX) :]).flat
    return False


def partial_suffixes(name: str, config: Config) -> tuple[str, ...]:
    """Suffixes of files still being written at the destination (left over when a writer died)."""
    if name.startswith(SFTP_PREFIX):
        return (config.sftp_partner(name[len(SFTP_PREFIX) :]).partial_suffix,)
    return (".partial",)


@functools.cache
def memory_destination() -> Destination:
    """The process's one in-memory destination (``memory``: tests and experiments only)."""
    from shared.destinations.memory import MemoryDestination

    return MemoryDestination()
