"""What a delivery remembers on the GCS object itself (custom metadata), so a redelivery can
prove "unchanged" without reading anything again.

- ``sha1``: the object's SHA-1, set by the first delivery that read it, with ``sha1-of``: the
  size and CRC32C of the bytes it was computed from. Users write objects too, and tools copy
  metadata to new generations: a ``sha1`` is trusted only while ``sha1-of`` matches the live
  generation (:func:`bound_sha1`); any other is replaced by the next delivery's;
- ``offsite-{kind}-{name}`` (``offsite-sftp-acme``): for destinations that cannot hash server-side
  (``Abilities.needs_ledger``), what was published there: path, size, server mtime, SHA-1.

Metadata is merged (other destinations' keys are kept) and only written on a generation that
still holds the delivered bytes.
"""

from __future__ import annotations

import json
import re

from shared import log
from shared.delivery.freshness import Stale, live_object
from shared.destinations.base import LedgerEntry
from shared.errors import PermanentError
from shared.events import StorageObject
from shared.gcp import gcs
from shared.ids import DestinationId

logger = log.get_logger(__name__)
SHA1_KEY = "sha1"
SHA1_OF_KEY = "sha1-of"  # "{size}:{crc32c}" of the bytes SHA1_KEY was computed from
ATTEMPTS = 3  # others patch the same object (one key per destination): a few tries


def ledger_key(destination: DestinationId) -> str:
    """The metadata key of one destination's ledger entry (``offsite-sftp-acme``)."""
    return "offsite-" + re.sub(r"[^A-Za-z0-9_-]", "-", str(destination))


class ObjectLedger:
    """The DeliveryLedger of one object generation for one destination (its custom metadata)."""

    def __init__(self, destination: DestinationId, metadata: dict[str, str]) -> None:
        self.key = ledger_key(destination)
        self.recorded = metadata.get(self.key)
        self.updated: str | None = None

    def recall(self, path: str) -> LedgerEntry | None:
        try:
            entry = json.loads(self.recorded or "")
            if entry.get("path") != path:
                return None
            return LedgerEntry(int(entry["size"]), int(entry["mtime"]), str(entry["sha1"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def remember(self, path: str, entry: LedgerEntry) -> None:
        value = json.dumps({"path": path, "size": entry.size, "mtime": entry.mtime, "sha1": entry.sha1}, sort_keys=True)
        if value != self.recorded:
            self.updated = value


def sha1_source(info: gcs.ObjectInfo) -> str | None:
    """What ``sha1-of`` holds for a SHA-1 of ``info``'s bytes; None without a CRC32C to bind to."""
    return f"{info.size}:{info.crc32c}" if info.crc32c else None


def bound_sha1(info: gcs.ObjectInfo) -> str | None:
    """The object's recorded SHA-1 when it was computed from this generation's bytes, else None
    (hash them again: a ``sha1`` carried over from another generation or set by a user proves nothing)."""
    source = sha1_source(info)
    if source is None or info.metadata.get(SHA1_OF_KEY) != source:
        return None
    return info.metadata.get(SHA1_KEY)


def record_delivery(obj: StorageObject, sha1: str, ledger: ObjectLedger | None) -> bool:
    """Merge ``sha1`` (unless a bound one is recorded) and the ledger's new entry into the
    object's metadata.

    False when the object was replaced meanwhile (its facts belong to the old generation: no
    receipt). A metadata write that keeps failing is logged, not raised: the file is delivered.
    """
    updates = {ledger.key: ledger.updated} if ledger is not None and ledger.updated else {}
    last: PermanentError | None = None
    for _ in range(ATTEMPTS):
        try:
            live = live_object(obj)
        except Stale as stale:
            logger.warning("object replaced during delivery; its metadata is not recorded", reason=str(stale))
            return False
        known = bound_sha1(live)
        if known is not None and known != sha1:
            logger.error("object's sha1 metadata differs from the bytes read (CRC32C-checked); kept", sha1=sha1)
        wanted = dict(updates)
        source = sha1_source(live)
        if known is None and source is not None:
            wanted |= {SHA1_KEY: sha1, SHA1_OF_KEY: source}
        if all(live.metadata.get(k) == v for k, v in wanted.items()):
            return True
        try:
            gcs.set_metadata(live.bucket, live.name, wanted, if_generation_match=live.generation)
            return True
        except gcs.GenerationMoved as exc:  # the generation moved under us: look again
            last = exc
        except PermanentError as exc:  # e.g. access denied: looking again changes nothing
            logger.error("could not record delivery metadata", error=str(exc))
            return True
    logger.warning("could not record delivery metadata", error=str(last))
    return True


def forget(info: gcs.ObjectInfo, destination: DestinationId) -> None:
    """Drop ``destination``'s ledger entry from this generation, so its next delivery proves the
    copy by the server's bytes (a copy damaged with its size and mtime kept is otherwise
    recalled as the right one). Nothing to do without one; another generation has its own.
    Any other failure (access denied) is raised: the entry would keep vouching for the copy."""
    if ledger_key(destination) not in info.metadata:
        return
    try:
        gcs.set_metadata(info.bucket, info.name, {ledger_key(destination): None}, if_generation_match=info.generation)
    except gcs.GenerationMoved:  # replaced meanwhile: the new generation has no entry for this copy
        logger.info("object replaced; its ledger entry went with it", object=info.name)
