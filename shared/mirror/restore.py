"""Restore a mirrored bucket's objects from one destination's copies (``offsite mirror restore``).

The destination's folder of the bucket (``remote_folder``) is listed — without the versions
that ``retention`` keeps (``_offsite_versions/``) and files named as uploads in progress — and
each file becomes the object of its name relative to the folder, in the target bucket (by
default the mirrored bucket itself). Each file is streamed into GCS with its SHA-1 computed on
the way and checked against the size and hash the destination reports for it (Box's SHA-1,
Drive's SHA-1 or MD5; an SFTP server reports none, so there the size is the check): a copy
whose bytes are not what the destination says is deleted again (only the generation this
restore created) and reported ``damaged``. An object that already exists is never replaced: the
target bucket is listed first and an existing name is reported ``exists`` without reading its
copy; the upload's precondition ("no live generation") also stops one written meanwhile.

With ``versions_day`` the copies come from the versions ``retention`` kept that day instead
(``{remote_folder}/_offsite_versions/YYYY-MM-DD/``: the copies of objects deleted, or found
extra, on that UTC day), each under its object name again: the way back from a deletion.

A restore into the mirrored bucket fires its finalize events like any write: the deliveries
find the destinations already holding the same bytes (``unchanged``) and put nothing.
"""

from __future__ import annotations

import datetime as dt
import mimetypes
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from queue import Empty, Queue
from typing import Any

from google.api_core import exceptions as gexc

from shared import log
from shared.config.buckets import VERSIONS_FOLDER, BucketMirror
from shared.destinations.base import Destination, Readable, RemoteFile
from shared.errors import PermanentError
from shared.gcp import clients, gcs
from shared.mirror.versions import DAY_FORMAT
from shared.restore.fetch import check_of, damage_of
from shared.restore.stage import CHUNK, HashingReader

logger = log.get_logger(__name__)

RESTORED, WOULD_RESTORE, EXISTS, DAMAGED = "restored", "would_restore", "exists", "damaged"
HELD = "the bucket holds an object of this name (never replaced)"


@dataclass(frozen=True)
class RestoredObject:
    """One file of the destination's folder and what became of it in the target bucket."""

    name: str  # the object name (the path under the bucket's folder)
    path: str  # the file at the destination
    size: int
    status: str  # restored | would_restore | exists | damaged
    check: str  # sha1 / md5: the destination's hash matched; size: it reports none
    sha1: str | None = None  # of the bytes read (restored, damaged)
    generation: int | None = None  # of the object created (restored)
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def copies(
    mirror: BucketMirror, destination: Destination, prefix: str = "", versions_day: dt.date | None = None
) -> Iterator[tuple[str, RemoteFile]]:
    """(object name, file) for every copy of the bucket's objects at ``destination`` whose name
    starts with ``prefix``: not the kept versions (``versions_day``: only that day's versions),
    not uploads in progress."""
    folder = mirror.folder
    if versions_day is not None:
        folder = f"{mirror.versions_folder}/{versions_day.strftime(DAY_FORMAT)}"
    suffix = destination.abilities.partial_suffix
    for remote in destination.list(folder):
        name = remote.path[len(folder) + 1 :]
        if versions_day is None and name.split("/", 1)[0].casefold() == VERSIONS_FOLDER:
            continue
        if suffix and name.endswith(suffix):
            continue
        if name.startswith(prefix):
            yield name, remote


def restore_object(destination: Destination, remote: RemoteFile, name: str, bucket: str) -> RestoredObject:
    """Stream one copy into ``gs://bucket/name`` unless an object of that name exists; checked."""
    if not isinstance(destination, Readable):
        raise PermanentError(f"{destination.name} cannot be read back; nothing can be restored from it")
    check = check_of(remote)
    reader = HashingReader(destination.open(remote.path), md5=check == "md5")
    blob: Any = clients.storage_client().bucket(bucket).blob(name, chunk_size=CHUNK)
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    try:
        with gcs.mapped_errors(f"restoring {destination.location(remote.path)} to {gcs.uri(bucket, name)}"):
            blob.upload_from_file(reader, content_type=content_type, if_generation_match=0)
    except gexc.PreconditionFailed:
        return RestoredObject(name, remote.path, remote.size, EXISTS, check, reason=HELD)
    finally:
        reader.stream.close()
    got = reader.sha1.hexdigest()
    problem = damage_of(remote, reader, check)
    if problem is not None:
        gcs.delete(bucket, name, if_generation_match=blob.generation)
        logger.warning("restored copy damaged; deleted", object=name, reason=problem)
        return RestoredObject(name, remote.path, reader.size, DAMAGED, check, got, reason=problem)
    logger.info("object restored", object=name, size=reader.size, sha1=got, destination=str(destination.id))
    return RestoredObject(name, remote.path, reader.size, RESTORED, check, got, blob.generation)


Opener = Callable[[], AbstractContextManager[Destination]]
"""A new handle on the destination restored from, for one worker (``factory.opened``)."""


class RestoreStopped(Exception):
    """The restore stopped at ``cause``; ``results`` is what it did before (what it restored
    stays in the bucket: a second run finds it there and restores the rest)."""

    def __init__(self, cause: BaseException, results: list[RestoredObject]) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.results = results


def restore_bucket(
    mirror: BucketMirror,
    open_destination: Opener,
    bucket: str,
    *,
    prefix: str = "",
    dry_run: bool = False,
    versions_day: dt.date | None = None,
    workers: int = 1,
) -> list[RestoredObject]:
    """Every copy under ``prefix`` (of ``versions_day``'s versions, when given) restored into
    ``bucket`` (or, ``dry_run``, what would be; nothing is written), in listing order. The target
    bucket is listed once: an object it holds is ``exists``. ``workers`` copies run at once, each
    on a handle of its own; the first failure stops the others taking more: RestoreStopped, with
    the results so far."""
    present = {o.name for o in gcs.list_prefix(bucket, prefix)}
    with open_destination() as destination:
        found = list(copies(mirror, destination, prefix, versions_day))
    out: dict[str, RestoredObject] = {}
    todo: list[tuple[str, RemoteFile]] = []
    for name, remote in found:
        if name in present:
            out[name] = RestoredObject(name, remote.path, remote.size, EXISTS, check_of(remote), reason=HELD)
        elif dry_run:
            out[name] = RestoredObject(name, remote.path, remote.size, WOULD_RESTORE, check_of(remote))
        else:
            todo.append((name, remote))
    failure = _copy_all(open_destination, todo, bucket, min(workers, len(todo)), out) if todo else None
    results = [out[name] for name, _ in found if name in out]
    if failure is not None:
        raise RestoreStopped(failure, results)
    return results


def _copy_all(
    open_destination: Opener,
    todo: list[tuple[str, RemoteFile]],
    bucket: str,
    workers: int,
    done: dict[str, RestoredObject],
) -> BaseException | None:
    """Copy ``todo`` with ``workers`` threads into ``done``; the first failure, once every worker
    has stopped (none takes another file after it)."""
    queue: Queue[tuple[str, RemoteFile]] = Queue()
    for item in todo:
        queue.put(item)
    stop = threading.Event()

    def work() -> None:
        with open_destination() as destination:
            while not stop.is_set():
                try:
                    name, remote = queue.get_nowait()
                except Empty:
                    return
                try:
                    done[name] = restore_object(destination, remote, name, bucket)
                except BaseException:
                    stop.set()
                    raise

    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="mirror-restore") as pool:
        futures = [pool.submit(work) for _ in range(max(1, workers))]
    return next((f.exception() for f in futures if f.exception() is not None), None)
