"""Which objects of a mirrored bucket are delivered, where, and under which run id.

An object of a bucket in ``buckets[]`` goes to ``{remote_folder}/{object name}``
(``GCP/storage/{bucket}/{name}`` by default, seed 000's tree) at each of the entry's
destinations (every configured destination when it names none). Names are kept as they are
(spaces, unicode, deep prefixes). A name that is not already its own destination path cannot be
mirrored (:func:`name_problem`): a ``..`` segment would leave the folder, and a ``\\``, an empty
segment (``a//b``) or a ``.`` segment would make it share a copy with another object (``a\\b`` and
``a/b`` are one path at a destination); nor can one under the reserved ``_offsite_versions/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared import log
from shared.config import Config
from shared.config.buckets import VERSIONS_FOLDER, BucketMirror
from shared.destinations.base import normalize_path
from shared.errors import PermanentError, RejectedInput
from shared.events import StorageObject
from shared.ids import DestinationId
from shared.messages import Source

if TYPE_CHECKING:
    from shared.mirror.request import MirrorRequest

logger = log.get_logger(__name__)


def mirror_run_id(bucket: str) -> str:
    """The run id receipts and results of a bucket's mirror carry: ``mirror-{bucket}`` (a run id
    allows letters, digits, '_' and '-': dots become '-')."""
    return ("mirror-" + re.sub(r"[^A-Za-z0-9_-]", "-", bucket))[:63]


def bucket_source(bucket: str) -> Source:
    """How results name a mirrored bucket: ``{"mode": "bucket", "bucket": NAME}``."""
    return Source(mode="bucket", bucket=bucket)


def name_problem(object_name: str, partial_suffix: str | None = None) -> str | None:
    """Why ``object_name`` cannot be mirrored, if it cannot: its destination path must be the
    name itself (else two objects could share one copy, and deleting one would remove the
    other's) and must not lie in the reserved versions folder (any case: Box and Drive fold it).
    ``partial_suffix``: a destination's (SFTP's ``.partial``), which names its uploads in
    progress; it refuses a file of such a name (docs/sftp.md, "Atomic publish")."""
    try:
        path = normalize_path(object_name)
    except ValueError:
        return "it has a '..' segment, which would leave the bucket's folder"
    if path != object_name:
        return f"its destination path would be {path!r} ('\\\\', '//' and '.' segments are not kept), which another object may hold"
    if path.split("/", 1)[0].casefold() == VERSIONS_FOLDER:
        return f"{VERSIONS_FOLDER}/ is reserved for the versions kept by retention"
    if partial_suffix and path.rpartition("/")[2].endswith(partial_suffix):
        return f"it ends with {partial_suffix!r}, which names uploads in progress at this destination"
    return None


def remote_path(mirror: BucketMirror, object_name: str) -> str:
    """Where ``object_name`` goes at a destination. PermanentError for a name that cannot be mirrored."""
    problem = name_problem(object_name)
    if problem is not None:
        raise PermanentError(f"gs://{mirror.name}/{object_name}: cannot be mirrored: {problem}")
    return f"{mirror.folder}/{object_name}" if mirror.folder else object_name


def mirrorable(object_name: str, partial_suffix: str | None = None) -> bool:
    """False (logged) for a name that cannot be mirrored (:func:`name_problem`)."""
    problem = name_problem(object_name, partial_suffix)
    if problem is not None:
        logger.warning("object name cannot be mirrored; skipped", object=object_name, reason=problem)
        return False
    return True


def mirror_destinations(mirror: BucketMirror, config: Config) -> tuple[DestinationId, ...]:
    """The entry's destinations, or every configured one when it names none."""
    return mirror.destinations or config.destination_names()


def mirrored(config: Config, bucket: str, what: str = "bucket") -> BucketMirror:
    """The config's ``buckets[]`` entry of ``bucket``; RejectedInput naming ``what`` (the field
    or argument it came from) and the mirrored buckets when there is none."""
    mirror = config.mirror(bucket)
    if mirror is None:
        known = ", ".join(b.name for b in config.buckets) or "none"
        raise RejectedInput(f"{what}: {bucket!r} is not a mirrored bucket (buckets[] in the config: {known})")
    return mirror


def reconcile_targets(request: MirrorRequest, config: Config) -> tuple[BucketMirror, tuple[DestinationId, ...]]:
    """The bucket's entry and the destinations to reconcile (its own, or the one asked for), as
    verify, ``offsite mirror`` and the HTTP trigger check a request before acting on it.

    RejectedInput when the bucket is not in ``buckets[]`` or the destination is not one of its own.
    """
    mirror = mirrored(config, request.bucket, "mirror request.bucket")
    targets = mirror_destinations(mirror, config)
    if request.destination is None:
        return mirror, targets
    if request.destination not in targets:
        raise RejectedInput(
            f"mirror request.destination: {str(request.destination)!r} is not a destination of bucket "
            f"{mirror.name!r} (its destinations: {', '.join(targets) or 'none'})"
        )
    return mirror, (request.destination,)


@dataclass(frozen=True)
class MirroredObject:
    """An object of a mirrored bucket that the mirror selects."""

    obj: StorageObject
    mirror: BucketMirror

    @property
    def run_id(self) -> str:
        return mirror_run_id(self.mirror.name)

    @property
    def remote_path(self) -> str:
        return remote_path(self.mirror, self.obj.name)


def mirror_route(obj: StorageObject, config: Config) -> MirroredObject | None:
    """The mirrored object ``obj``; None (logged) when its bucket is not mirrored or the
    entry's include/exclude globs leave it out."""
    mirror = config.mirror(obj.bucket)
    if mirror is None:
        logger.info("bucket is not mirrored; ignored", bucket=obj.bucket, object=obj.name)
        return None
    if not mirror.selects(obj.name) or not mirrorable(obj.name):
        logger.info("object not selected by the bucket's include/exclude; ignored", bucket=obj.bucket, object=obj.name)
        return None
    return MirroredObject(obj, mirror)
