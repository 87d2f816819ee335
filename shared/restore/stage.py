"""Stream a run's files from a destination into a staging bucket, each checked against the
manifest's SHA-1 (and size) before anything is loaded."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from shared import log
from shared.destinations.base import ByteStream, Destination, Readable
from shared.errors import PermanentError
from shared.gcp import clients, gcs
from shared.manifest import ManifestFile
from shared.restore.locate import RemoteRun

logger = log.get_logger(__name__)
CHUNK = 8 * 1024 * 1024  # resumable upload chunk: bounded memory


class DamagedFile(PermanentError):
    """A delivered file does not hold the bytes the manifest lists: nothing is loaded."""


class OutOfTime(PermanentError):
    """The restore's deadline (the drill's budget) passed before the load could start: nothing is loaded."""


class HashingReader:
    """A read-only stream that hashes what passes through (for the GCS upload): SHA-1 always,
    MD5 too when asked (a destination that reports only MD5, as Drive may)."""

    def __init__(self, stream: ByteStream, deadline: float | None = None, *, md5: bool = False) -> None:
        self.stream = stream
        self.deadline = deadline
        self.sha1 = hashlib.sha1()
        self.md5 = hashlib.md5(usedforsecurity=False) if md5 else None
        self.size = 0

    def tell(self) -> int:  # the resumable upload asks where the stream starts
        return self.size

    def read(self, size: int = -1) -> bytes:
        """Exactly ``size`` bytes unless the file ends: the upload takes a short read for its end
        (an SFTP read may return less than asked). OutOfTime past the deadline: checked once per
        upload chunk; the abandoned upload never becomes an object."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise OutOfTime(f"did not finish within the budget: still staging a file ({self.size} bytes read)")
        if size is None or size < 0:
            data = self.stream.read()
        else:
            parts, left = [], size
            while left > 0 and (part := self.stream.read(left)):
                parts.append(part)
                left -= len(part)
            data = b"".join(parts)
        self.sha1.update(data)
        if self.md5 is not None:
            self.md5.update(data)
        self.size += len(data)
        return data


@dataclass(frozen=True)
class StagedFile:
    name: str
    uri: str
    size: int
    sha1: str


def staging_folder(prefix: str, run_id: str, attempt: str) -> str:
    """``prefix/run_id/attempt``: each restore attempt stages under its own folder, so two
    restores of one run (a manual drill during the scheduled one) never delete each other's files."""
    return f"{prefix.strip('/')}/{run_id}/{attempt}".lstrip("/")


def staging_name(folder: str, file: ManifestFile) -> str:
    return f"{folder}/{file.name}"


def stage_file(
    destination: Destination,
    run: RemoteRun,
    file: ManifestFile,
    bucket: str,
    folder: str,
    deadline: float | None = None,
) -> StagedFile:
    """Copy one file to ``gs://bucket/folder/name``; DamagedFile (staged copy removed) when its
    size or SHA-1 is not the manifest's, OutOfTime when ``deadline`` passes while it is copied."""
    if not isinstance(destination, Readable):
        raise PermanentError(f"{destination.name} cannot be read back; nothing can be restored from it")
    if not file.sha1:
        raise PermanentError(f"{run.manifest_path}: file {file.name} has no sha1; this manifest cannot prove a restore")
    name = staging_name(folder, file)
    source = HashingReader(destination.open(run.path_of(file.name)), deadline)
    blob: Any = clients.storage_client().bucket(bucket).blob(name, chunk_size=CHUNK)
    try:
        with gcs.mapped_errors(f"staging {file.name} at {gcs.uri(bucket, name)}"):
            blob.upload_from_file(source, content_type="application/octet-stream")
    finally:
        source.stream.close()
    got = source.sha1.hexdigest()
    if source.size != file.size or got != file.sha1.lower():
        gcs.delete(bucket, name)
        raise DamagedFile(
            f"restore: {destination.location(run.path_of(file.name))} is damaged: size {source.size}, sha1 {got}; "
            f"the manifest says size {file.size}, sha1 {file.sha1} — nothing was loaded"
        )
    logger.info("file staged", file=file.name, size=source.size, sha1=got, staged=gcs.uri(bucket, name))
    return StagedFile(file.name, gcs.uri(bucket, name), source.size, got)
