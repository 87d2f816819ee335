"""Versions kept by a mirrored bucket's ``retention`` (docs/mirror.md, docs/retention.md).

With ``retention`` set (which needs ``delete: mirror``), a copy the mirror would delete — its
object was deleted in the bucket, or the reconcile found it extra — is not destroyed but moved
to ``{folder}/_offsite_versions/YYYY-MM-DD/{path}`` (the UTC day of the move), as rclone's
``--backup-dir``. Retention prunes those dated folders (:mod:`shared.retention.versions`).

A destination that can rename (:class:`Movable`: SFTP) moves the file; the others (Box, Drive)
copy it (read back, ``put`` at the new path) and then delete it. Both are safe to repeat: a
move of a file that is gone does nothing, a copy already made is ``unchanged``. A second
removal of the same path on the same day replaces the first one's version.

Replaced objects are not versioned here: a replacement is delivered by the one delivery
operation, which overwrites in place (Box keeps the old bytes in the file's own version history;
SFTP and Drive keep only the newest). Moving the old copy first would leave the name empty while
a multi-GB upload resumes across invocations, and a retry could not tell a moved copy from one
never made.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol, runtime_checkable

from shared import log
from shared.config.buckets import BucketMirror
from shared.destinations.base import Destination, Readable
from shared.errors import PermanentError

logger = log.get_logger(__name__)
DAY_FORMAT = "%Y-%m-%d"


@runtime_checkable
class Movable(Protocol):
    """Optional ability: rename a file at the destination (parents created)."""

    def move(self, path: str, to: str) -> bool:
        """Move the file ``path`` to ``to``; False when there is no file at ``path``."""
        ...


def version_path(mirror: BucketMirror, relative: str, day: dt.date) -> str:
    """Where the copy at ``{folder}/{relative}`` goes when removed on ``day``."""
    return f"{mirror.versions_folder}/{day.strftime(DAY_FORMAT)}/{relative}"


def remove_copy(
    mirror: BucketMirror, destination: Destination, remote_path: str, *, now: dt.datetime | None = None
) -> None:
    """Remove the copy at ``remote_path``: deleted without ``retention``, else moved to the day's
    versions folder (module docstring)."""
    if mirror.retention is None:
        destination.delete(remote_path)
        return
    head = mirror.folder + "/" if mirror.folder else ""
    relative = remote_path[len(head) :] if remote_path.startswith(head) else remote_path
    target = version_path(mirror, relative, (now or dt.datetime.now(dt.UTC)).date())
    if isinstance(destination, Movable):
        moved = destination.move(remote_path, target)
    else:
        moved = _copy_then_delete(destination, remote_path, target)
    if moved:
        logger.info("copy kept as a version (retention)", remote_path=remote_path, version=target)


def _copy_then_delete(destination: Destination, path: str, target: str) -> bool:
    found = destination.stat(path)
    if found is None:
        return False
    if not isinstance(destination, Readable):
        raise PermanentError(f"{destination.name} can neither move nor read back files; retention cannot keep versions")
    stream = destination.open(path)
    try:
        destination.put(target, stream, found.size, sha1=found.sha1)
    finally:
        stream.close()
    destination.delete(path)
    return True
