"""The one Destination protocol every backend implements (box, sftp, drive, memory).

Paths are POSIX-style and relative to the destination's root (the Box root folder, the
SFTP partner directory): ``GCP/bigquery/sales/orders/20250108/r1a2b/part-000000000000.parquet``.
The verify engine and the operations code work on this protocol only and never import a
backend, as rclone's ``operations`` works on ``fs.Fs``.

Abilities are declared as data (:class:`Abilities`), not guessed from a destination's name:
which content hashes ``stat``/``list`` report (``{"sha1"}`` for Box, maybe empty for SFTP, so
callers say how strong a check was), whether files appear atomically, the suffix of files still
being written, the folder layout, whether an upload can resume. Code outside a backend reads
``destination.abilities``; nothing outside a backend tests a destination's kind or name.
"""

from __future__ import annotations

import builtins
import hashlib
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypedDict, Unpack, runtime_checkable

from shared.ids import DestinationId

PutStatus = Literal["uploaded", "unchanged", "new_version"]
FolderLayout = Literal["gcp_tree", "nested", "flat"]
"""Where a run's files go (shared.layout.remote_folder): ``GCP/bigquery/{dataset}/...``
trees, ``{dataset}/{table}/...`` under the root, or straight into the root."""


@dataclass(frozen=True)
class Abilities:
    """What a destination can do, declared by its backend (rclone's ``Features``)."""

    hashes: frozenset[str] = frozenset()
    """Content hashes ``stat``/``list`` report (``{"sha1"}``); empty: callers read back or say size-only."""
    atomic_put: bool = True
    """A file appears whole or not at all (temp name + rename, or a committed upload)."""
    partial_suffix: str | None = None
    """Suffix of a file still being written (``.partial``); verify names leftovers as such."""
    layout: FolderLayout = "nested"
    """Folder layout of a run's files at this destination."""
    resumable: bool = False
    """An interrupted upload can continue where it stopped."""
    needs_ledger: bool = False
    """Cannot hash server-side: ``put`` proves "unchanged" with the caller's :class:`DeliveryLedger`."""
    folds_case: bool = False
    """Names that differ only in case are one file here (Box): a put of ``report.csv`` replaces
    ``Report.csv``. Collect holds partner files whose paths would clash so."""


@dataclass(frozen=True)
class RemoteFile:
    """One file as the destination reports it."""

    path: str
    size: int
    sha1: str | None = None
    remote_id: str | None = None
    md5: str | None = None
    """MD5 when the destination reports one besides SHA-1 (Drive's ``md5Checksum``)."""
    mtime: int | None = None
    """Modification time in whole seconds when the destination reports one (SFTP): a SHA-1 read
    back earlier stands for the file only while its size and this are unchanged."""


@dataclass(frozen=True)
class PutResult:
    """What ``put`` did: uploaded a new file, found the same bytes there, or added a version."""

    path: str
    size: int
    sha1: str
    status: PutStatus
    remote_id: str | None = None


@dataclass(frozen=True)
class Progress:
    """A resumable upload stopped at its deadline: where it stands, to continue in another
    invocation (``Resumable.put_resumable(..., resume=state)``)."""

    state: dict[str, Any]
    """The backend's own JSON-able resume state (an upload session id, a partial file's size and hash)."""
    bytes_done: int
    """Bytes of the file already at the destination."""
    bytes_sent: int
    """Bytes sent in this invocation (a resumed upload never sends a stored chunk again)."""


@dataclass(frozen=True)
class LedgerEntry:
    """What was published at a path: its size, the server's mtime right after, and the SHA-1."""

    size: int
    mtime: int
    sha1: str


class DeliveryLedger(Protocol):
    """Where the caller remembers what a destination published (GCS metadata in the delivery
    operation, memory in tests), for backends that cannot hash server-side."""

    def recall(self, path: str) -> LedgerEntry | None: ...

    def remember(self, path: str, entry: LedgerEntry) -> None: ...


class MemoryLedger:
    """A DeliveryLedger in a dict (tests, CLI, one-off uploads)."""

    def __init__(self) -> None:
        self._entries: dict[str, LedgerEntry] = {}
        self._lock = threading.Lock()

    def recall(self, path: str) -> LedgerEntry | None:
        with self._lock:
            return self._entries.get(path)

    def remember(self, path: str, entry: LedgerEntry) -> None:
        with self._lock:
            self._entries[path] = entry


@runtime_checkable
class Destination(Protocol):
    """A place offsite delivers files to.

    Errors: network trouble, rate limits and server errors raise ``TransientError``;
    auth/permission/config problems raise ``PermanentError`` naming the path.
    """

    id: DestinationId
    """The routing id as used in config and messages: ``box``, ``sftp:acme``, ``memory``."""

    name: str
    """How results and log lines name this destination (usually ``str(id)``)."""

    abilities: Abilities
    """What this destination can do (see :class:`Abilities`)."""

    def put(
        self, path: str, source: ByteStream, size: int, *, sha1: str | None = None, ledger: DeliveryLedger | None = None
    ) -> PutResult:
        """Store ``size`` bytes read from ``source`` at ``path``, creating parent folders.

        When a file with provably the same bytes is already there nothing is written and the
        status is ``unchanged`` (size alone never proves it). The file appears whole or not at
        all. ``sha1``, when the caller knows it, lets the backend skip without reading
        ``source``; ``ledger`` is where backends that ``needs_ledger`` record what they published.
        """
        ...

    def location(self, path: str) -> str:
        """How a person finds ``path`` there (receipts, logs): the server path on SFTP."""
        ...

    def close(self) -> None:
        """Release what this handle holds (connections); process-wide pools stay warm."""
        ...

    def stat(self, path: str) -> RemoteFile | None:
        """The file at ``path``, or None when there is none."""
        ...

    def list(self, prefix: str = "", *, hashes: bool = True) -> Iterator[RemoteFile]:
        """Every file under the folder ``prefix``, recursively; empty when it does not exist.

        ``hashes=False``: the caller needs paths and sizes only (retention), so a backend whose
        hashes cost work on the server (SFTP's ``hashing``) leaves ``sha1`` None; backends whose
        listing carries hashes for free may ignore it."""
        ...

    def list_folders(self, prefix: str = "") -> builtins.list[str]:
        """The names (not paths) of the immediate subfolders of the folder ``prefix``, sorted;
        empty when it does not exist. One listing of that folder only (retention walks a
        dataset table by table)."""
        ...

    def delete(self, path: str) -> None:
        """Remove the file at ``path``; a missing file is not an error."""
        ...

    def mkdirs(self, path: str) -> None:
        """Create the folder ``path`` and its parents; existing folders are fine."""
        ...

    def delete_folder(self, path: str, *, recursive: bool = True) -> bool:
        """Remove the folder ``path`` with everything under it, or (``recursive=False``) only
        when it holds nothing, not even an empty folder. True when no folder ``path`` is left
        (a missing one is not an error); False when ``recursive=False`` and it is not empty.
        ValueError for the destination root (``""``): a root is never deleted."""
        ...


class ByteStream(Protocol):
    """A binary stream as read back from a destination: ``read`` and ``close`` are all verify needs
    (a ``BinaryIO``, an ``io.RawIOBase`` reader or urllib3's streamed response body)."""

    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


def sha1_of_stream(
    stream: ByteStream, block: int = 1024 * 1024, *, before_block: Callable[[int], None] | None = None
) -> str:
    """Hex SHA-1 of ``stream`` read to its end in blocks (bounded memory); the stream is closed.
    ``before_block(bytes read so far)`` is called before each block and may raise to stop."""
    digest, done = hashlib.sha1(), 0
    try:
        while True:
            if before_block is not None:
                before_block(done)
            if not (chunk := stream.read(block)):
                break
            digest.update(chunk)
            done += len(chunk)
    finally:
        stream.close()
    return digest.hexdigest()


class ResumeOptions(TypedDict, total=False):
    """``put_resumable``'s keyword options: ``put``'s (``sha1``, ``ledger``), plus the state to
    resume from and the deadline (``time.monotonic()``) to stop at, and (:class:`Labelled`
    destinations) ``put_labelled``'s labels."""

    sha1: str | None
    ledger: DeliveryLedger | None
    resume: dict[str, Any] | None
    deadline: float | None
    labels: Mapping[str, str] | None
    """A :class:`Labelled` destination's labels for the file (others take none)."""


@runtime_checkable
class Resumable(Protocol):
    """Optional ability (``Abilities.resumable``): an upload that works until a deadline, then
    hands back its :class:`Progress` so a later invocation continues where it stopped."""

    def put_resumable(
        self, path: str, source: ByteStream, size: int, **options: Unpack[ResumeOptions]
    ) -> PutResult | Progress:
        """``put``, reading ``source`` from its first byte (bytes already stored are hashed, not
        sent); past ``deadline`` (``time.monotonic()``) it stops at a chunk boundary and returns
        :class:`Progress`. A ``resume`` state that cannot be proven (expired, changed) restarts."""
        ...


class PutViaResumable:
    """``Destination.put`` for a :class:`Resumable` backend: ``put_resumable`` with no deadline,
    which never pauses, so the outcome is always a :class:`PutResult`."""

    def put(
        self: Resumable,
        path: str,
        source: ByteStream,
        size: int,
        *,
        sha1: str | None = None,
        ledger: DeliveryLedger | None = None,
    ) -> PutResult:
        outcome = self.put_resumable(path, source, size, sha1=sha1, ledger=ledger)
        assert isinstance(outcome, PutResult)  # no deadline: it never pauses
        return outcome


@runtime_checkable
class Labelled(Protocol):
    """Optional ability: a file carries labels given by the caller (short key → value strings,
    Drive's ``appProperties``), set with its bytes, and is found by them. A caller whose own
    records are lost still finds its earlier copy: collect labels each copy with the partner
    file's identity and looks it up before uploading. A backend may store a value too long for
    its limits as a hash of it; ``find_labelled`` applies the same mapping."""

    def put_labelled(
        self,
        path: str,
        source: ByteStream,
        size: int,
        labels: Mapping[str, str],
        *,
        ledger: DeliveryLedger | None = None,
    ) -> PutResult:
        """``put``; the file at ``path`` then carries ``labels`` (also when it was ``unchanged``)."""
        ...

    def find_labelled(self, path: str, labels: Mapping[str, str]) -> RemoteFile | None:
        """A complete file in ``path``'s folder carrying every one of ``labels`` (whatever its
        name now), or None. Only finished uploads carry labels: never a partial file."""
        ...


@runtime_checkable
class Readable(Protocol):
    """Optional ability: read a file back (verify hashes it when the server cannot, like
    ``rclone check --download``)."""

    def open(self, path: str, start: int = 0) -> ByteStream:
        """A binary stream of the file's bytes from byte ``start`` on (a ranged read: the bytes
        before it are not sent); the caller closes it."""
        ...


def skipped_to(stream: ByteStream, start: int) -> ByteStream:
    """``stream``, a whole file, read past its first ``start`` bytes: a server that answers a
    ranged read with the whole file (200, not 206) still gives the caller what it asked for."""
    left = start
    while left > 0 and (chunk := stream.read(min(left, 1024 * 1024))):
        left -= len(chunk)
    return stream


def range_header(start: int) -> dict[str, str]:
    """The HTTP header of a ranged read from byte ``start`` (none for the whole file)."""
    return {"Range": f"bytes={start}-"} if start else {}


def normalize_path(path: str) -> str:
    """Strip slashes and refuse ``..`` so no path can leave the destination root."""
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ValueError(f"path {path!r} must not contain '..'")
    return "/".join(parts)


def folder_path(path: str) -> str:
    """``normalize_path`` for a folder to delete: ValueError for the root, which is never deleted."""
    normalized = normalize_path(path)
    if not normalized:
        raise ValueError("refusing to delete the destination root folder")
    return normalized
