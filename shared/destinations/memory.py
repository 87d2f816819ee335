"""An in-memory Destination for unit tests and the conformance suite's reference backend."""

from __future__ import annotations

import builtins
import hashlib
import threading
from collections.abc import Iterator
from typing import BinaryIO

from shared.config import Config
from shared.destinations.base import (
    Abilities,
    ByteStream,
    DeliveryLedger,
    PutResult,
    RemoteFile,
    folder_path,
    normalize_path,
)
from shared.errors import PermanentError
from shared.ids import DestinationId
from shared.per_process import per_process

CHUNK = 1024 * 1024


class MemoryDestination:
    """Files in a dict; folders implied by paths, plus explicitly created empty ones."""

    def __init__(self, name: str = "memory", abilities: Abilities | None = None) -> None:
        """``abilities``: what this stand-in claims (tests model other backends with it)."""
        # default: the Box-like reference (SHA-1 listed, GCP/ tree); leftovers named *.partial
        self.abilities = abilities or Abilities(
            hashes=frozenset({"sha1"}), layout="gcp_tree", partial_suffix=".partial"
        )
        self.id = DestinationId("memory")
        self.name = name
        self._files: dict[str, bytes] = {}
        self._dirs: set[str] = set()
        self._lock = threading.Lock()

    def put(
        self, path: str, source: ByteStream, size: int, *, sha1: str | None = None, ledger: DeliveryLedger | None = None
    ) -> PutResult:
        path = normalize_path(path)
        with self._lock:
            existing = self._files.get(path)
        if existing is not None and sha1 is not None and hashlib.sha1(existing).hexdigest() == sha1:
            return PutResult(path, len(existing), sha1, "unchanged")
        data = bytearray()
        while chunk := source.read(CHUNK):
            data.extend(chunk)
        if len(data) != size:
            raise PermanentError(f"{self.name}: {path}: source gave {len(data)} bytes, expected {size}")
        digest = hashlib.sha1(data).hexdigest()
        with self._lock:
            before = self._files.get(path)
            if before is not None and hashlib.sha1(before).hexdigest() == digest:
                return PutResult(path, size, digest, "unchanged")
            if path in self._dirs:
                raise PermanentError(f"{self.name}: {path} is a folder")
            self._files[path] = bytes(data)
        return PutResult(path, size, digest, "new_version" if before is not None else "uploaded")

    def stat(self, path: str) -> RemoteFile | None:
        path = normalize_path(path)
        with self._lock:
            data = self._files.get(path)
        if data is None:
            return None
        return RemoteFile(path, len(data), hashlib.sha1(data).hexdigest())

    def list(self, prefix: str = "", *, hashes: bool = True) -> Iterator[RemoteFile]:
        prefix = normalize_path(prefix)
        head = prefix + "/" if prefix else ""
        with self._lock:
            items = sorted(self._files.items())
        for path, data in items:
            if path.startswith(head):
                yield RemoteFile(path, len(data), hashlib.sha1(data).hexdigest())

    def list_folders(self, prefix: str = "") -> builtins.list[str]:
        prefix = normalize_path(prefix)
        head = prefix + "/" if prefix else ""
        with self._lock:
            files, dirs = list(self._files), set(self._dirs)
        names = {p[len(head) :].split("/", 1)[0] for p in files if p.startswith(head) and "/" in p[len(head) :]}
        names |= {d[len(head) :].split("/", 1)[0] for d in dirs if d.startswith(head) and d != prefix}
        return sorted(names)

    def delete(self, path: str) -> None:
        with self._lock:
            self._files.pop(normalize_path(path), None)

    def mkdirs(self, path: str) -> None:
        path = normalize_path(path)
        with self._lock:
            if path in self._files:
                raise PermanentError(f"{self.name}: cannot create folder {path}: a file is there")
            self._dirs.add(path)

    def delete_folder(self, path: str, *, recursive: bool = True) -> bool:
        path = folder_path(path)
        head = path + "/"
        with self._lock:
            inside = [f for f in self._files if f.startswith(head)] + [d for d in self._dirs if d.startswith(head)]
            if inside and not recursive:
                return False
            for name in inside:
                self._files.pop(name, None)
                self._dirs.discard(name)
            self._dirs.discard(path)
        return True

    def open(self, path: str, start: int = 0) -> BinaryIO:
        import io

        with self._lock:
            data = self._files.get(normalize_path(path))
        if data is None:
            raise PermanentError(f"{self.name}: {path}: no such file")
        return io.BytesIO(data[start:])

    def close(self) -> None:
        """Nothing to release."""

    def location(self, path: str) -> str:
        return normalize_path(path)

    # test helpers: damage files the way real destinations get damaged
    def corrupt(self, path: str, data: bytes) -> None:
        with self._lock:
            self._files[normalize_path(path)] = data


@per_process
def process_destination() -> MemoryDestination:
    """The process's one in-memory destination (``memory``: tests and experiments only)."""
    return MemoryDestination()


def from_config(destination: DestinationId, config: Config) -> MemoryDestination:
    """The factory's entry point for kind ``memory``: needs no configuration."""
    return process_destination()
