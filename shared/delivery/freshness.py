"""Is the object an event announced still the one to deliver? (stale events)

An event names one generation. By the time it is handled the object may be deleted or
replaced; then the live generation's own event delivers it, and this one is ignored.

Compared by content (size, md5, crc32c), not by generation alone: a new generation holding the
same bytes needs no other delivery than this one. This also covers fake-gcs-server, which gives
a metadata patch (a delivery recording ``sha1``) a new generation where real GCS does not — the
one place that difference is absorbed.
"""

from __future__ import annotations

from shared.events import StorageObject
from shared.gcp import gcs


class Stale(Exception):
    """The object was deleted or now holds other bytes: the live generation's event delivers it."""


def same_content(obj: StorageObject, live: gcs.ObjectInfo) -> bool:
    """True when ``live`` holds the bytes the event announced."""
    if not obj.generation or live.generation == obj.generation:
        return True
    if obj.md5 is None and obj.crc32c is None:
        return False
    return (
        live.size == obj.size
        and (obj.md5 is None or obj.md5 == live.md5)
        and (obj.crc32c is None or obj.crc32c == live.crc32c)
    )


def live_object(obj: StorageObject) -> gcs.ObjectInfo:
    """The object as it is now, if it still holds the announced bytes; else :class:`Stale`."""
    live = gcs.stat(obj.bucket, obj.name)
    if live is None:
        raise Stale("the object no longer exists")
    if not same_content(obj, live):
        raise Stale(f"generation {obj.generation} was replaced by {live.generation} with other bytes")
    return live
