"""The one Destination protocol every backend implements (box, sftp, memory).

Paths are POSIX-style and relative to the destination's root (the Box root folder, the
SFTP partner directory): ``GCP/bigquery/sales/orders/20250108/r1a2b/part-000000000000.parquet``.
The verify engine and the operations code work on this protocol only and never import a
backend, as rclone's ``operations`` works on ``fs.Fs``.

Optional abilities are declared, not assumed: ``hashes`` says which content hashes
``stat``/``list`` report (``{"sha1"}`` for Box, maybe empty for SFTP), so callers say how
strong a check was instead of silently skipping it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Literal, Protocol, runtime_checkable

PutStatus = Literal["uploaded", "unchanged", "new_version"]


@dataclass(frozen=True)
class RemoteFile:
    """One file as the destination reports it."""

    path: str
    size: int
    sha1: str | None = None
    remote_id: str | None = None


@dataclass(frozen=True)
class PutResult:
    """What ``put`` did: uploaded a new file, found the same bytes there, or added a version."""

    path: str
    size: int
    sha1: str
    status: PutStatus
    remote_id: str | None = None


@runtime_checkable
class Destination(Protocol):
    """A place offsite delivers files to.

    Errors: network trouble, rate limits and server errors raise ``TransientError``;
    auth/permission/config problems raise ``PermanentError`` naming the path.
    """

    name: str
    """Routing name as used in config and messages: ``box``, ``sftp:acme``, ``memory``."""

    hashes: frozenset[str]
    """Content hashes ``stat``/``list`` report; ``{"sha1"}`` or empty."""

    def put(self, path: str, source: BinaryIO, size: int, *, sha1: str | None = None) -> PutResult:
        """Store ``size`` bytes read from ``source`` at ``path``, creating parent folders.

        When a file with the same bytes is already there (same sha1, or same size where
        the backend cannot hash and ``sha1`` is unknown to it) nothing is written and the
        status is ``unchanged``. The file appears whole or not at all.
        ``sha1``, when the caller knows it, lets the backend skip without reading ``source``.
        """
        ...

    def stat(self, path: str) -> RemoteFile | None:
        """The file at ``path``, or None when there is none."""
        ...

    def list(self, prefix: str = "") -> Iterator[RemoteFile]:
        """Every file under the folder ``prefix``, recursively; empty when it does not exist."""
        ...

    def delete(self, path: str) -> None:
        """Remove the file at ``path``; a missing file is not an error."""
        ...

    def mkdirs(self, path: str) -> None:
        """Create the folder ``path`` and its parents; existing folders are fine."""
        ...


@runtime_checkable
class Readable(Protocol):
    """Optional ability: read a file back (verify hashes it when the server cannot, like
    ``rclone check --download``)."""

    def open(self, path: str) -> BinaryIO:
        """A binary stream of the file's bytes; the caller closes it."""
        ...


def normalize_path(path: str) -> str:
    """Strip slashes and refuse ``..`` so no path can leave the destination root."""
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ValueError(f"path {path!r} must not contain '..'")
    return "/".join(parts)
