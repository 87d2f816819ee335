"""A delivered copy checked as it is read back: against the size and hash its destination lists.

Box lists a SHA-1 for every file, Drive a SHA-1 (or at least an MD5), an SFTP server no hash at
all: there the size is the check. :func:`fetch_file` downloads one file to a local path this
way (``offsite box|drive|sftp get``); ``offsite mirror restore`` checks each object it restores
with :func:`check_of` and :func:`damage_of` too.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from shared.destinations.base import Destination, Readable, RemoteFile
from shared.errors import OffsiteError, PermanentError
from shared.restore.stage import HashingReader

BLOCK = 1024 * 1024
PARTIAL = ".offsite-partial"


def check_of(remote: RemoteFile) -> str:
    """What a copy read back is held against besides its size: ``sha1``, ``md5`` or only ``size``."""
    return "sha1" if remote.sha1 else "md5" if remote.md5 else "size"


def damage_of(remote: RemoteFile, reader: HashingReader, check: str) -> str | None:
    """Why the bytes ``reader`` passed are not the file the destination lists, if they are not."""
    if reader.size != remote.size:
        return f"{reader.size} bytes read, the destination lists {remote.size}"
    if check == "sha1" and reader.sha1.hexdigest() != (remote.sha1 or "").lower():
        return f"sha1 {reader.sha1.hexdigest()} of the bytes read, the destination says {remote.sha1}"
    if check == "md5" and reader.md5 is not None and reader.md5.hexdigest() != (remote.md5 or "").lower():
        return f"md5 {reader.md5.hexdigest()} of the bytes read, the destination says {remote.md5}"
    return None


class DamagedCopy(PermanentError):
    """The bytes read are not the file the destination lists (bit rot at rest, a cut read)."""


@dataclass(frozen=True)
class Fetched:
    path: str  # at the destination
    local: str
    size: int
    sha1: str
    check: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fetch_file(destination: Destination, path: str, local: Path, *, force: bool = False) -> Fetched:
    """Download ``path`` to ``local``: written beside it as ``NAME.offsite-partial`` and renamed
    into place only once checked, so ``local`` never holds a damaged or partial copy (a damaged
    one is deleted: DamagedCopy). An existing ``local`` is replaced only with ``force``."""
    if not isinstance(destination, Readable):
        raise PermanentError(f"{destination.name} cannot be read back")
    remote = destination.stat(path)
    if remote is None:
        raise OffsiteError(f"no file {path!r} at {destination.name}")
    if local.is_dir():
        local = local / path.rsplit("/", 1)[-1]
    if local.exists() and not force:
        raise OffsiteError(f"{local} exists; --force replaces it")
    check = check_of(remote)
    reader = HashingReader(destination.open(remote.path), md5=check == "md5")
    partial = local.with_name(local.name + PARTIAL)
    try:
        with partial.open("wb") as out:
            while block := reader.read(BLOCK):
                out.write(block)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        reader.stream.close()
    problem = damage_of(remote, reader, check)
    if problem is not None:
        partial.unlink(missing_ok=True)
        raise DamagedCopy(f"{destination.location(remote.path)} is damaged: {problem}; nothing was written to {local}")
    os.replace(partial, local)
    return Fetched(remote.path, str(local), reader.size, reader.sha1.hexdigest(), check)
