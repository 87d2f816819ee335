"""An object deleted in a mirrored bucket (``google.cloud.storage.object.v1.deleted``).

With ``delete: keep`` (the default) the copy stays. With ``delete: mirror`` the copy is deleted
(with ``retention``: moved to the day's ``_offsite_versions/`` folder, :mod:`versions`), unless
the bucket holds the name again: replacing an object also deletes its old generation (GCS sends
a delete event with ``overwrittenByGeneration``), and the new generation's own finalize event
delivers it — the copy must not be removed under it. A name differing only in case, one file at
Box and Drive, is not looked for: finding it would list the bucket on every delete event. The
reconcile reports such twins as a case conflict and delivers the survivor's copy again.
"""

from __future__ import annotations

from shared import log
from shared.destinations.base import Destination
from shared.gcp import gcs
from shared.mirror import versions
from shared.mirror.routing import MirroredObject

logger = log.get_logger(__name__)


def apply_delete(mirrored: MirroredObject, destination: Destination) -> bool:
    """Delete the copy of a deleted object when the entry says ``delete: mirror``; True when deleted."""
    obj, mirror = mirrored.obj, mirrored.mirror
    if mirror.delete != "mirror":
        logger.info("object deleted; the copy is kept (delete: keep)", object=obj.name)
        return False
    live = gcs.stat(obj.bucket, obj.name)
    if live is not None:
        logger.info(
            "deleted generation was replaced; the copy stays for the live one",
            generation=obj.generation,
            live_generation=live.generation,
        )
        return False
    versions.remove_copy(mirror, destination, mirrored.remote_path)
    logger.info("copy removed (delete: mirror)", remote_path=destination.location(mirrored.remote_path))
    return True
