"""upload_box: one exported data file (a GCS finalize event) → the same bytes in Box, verified.

1. Only export data files of runs routed to ``box`` (``_run.json`` in the same GCS folder)
   are delivered; anything else is logged and ignored.
2. Stale events (the object was replaced or deleted since) are ignored: the event of the
   live generation delivers it.
3. The file is streamed from GCS into ``ROOT/GCP/bigquery/{dataset}/{table}/{YYYYMMDD}/{run_id}/``
   (query exports: ``ROOT/GCP/exports/{export}/{YYYYMMDD}/``) by the Box destination, which
   skips identical bytes and adds a version for different ones — so a redelivered event
   never duplicates a file or adds a version.
4. The SHA-1 is recorded as custom metadata ``sha1`` on that GCS generation, then a
   DeliveryReceipt is published on ``deliveries`` (verify compares the two).
"""

from __future__ import annotations

import io
import time
from typing import Any

from shared import log
from shared.config import BoxDestination as BoxSettings
from shared.config import Config
from shared.delivery.routing import locate_data_file, routing_for
from shared.destinations.base import PutResult
from shared.destinations.box.destination import for_settings
from shared.errors import ConfigError, PermanentError, TransientError
from shared.events import StorageObject, parse_storage
from shared.gcp import clients, gcs, pubsub
from shared.layout import RunFolder, remote_folder
from shared.messages import DeliveryReceipt, TableExport
from shared.topology import DELIVERIES

logger = log.get_logger(__name__)
DESTINATION = "box"
READ_ATTEMPTS = 3
READ_CHUNK_BYTES = 1024 * 1024  # reads of parts fetch exactly the part; smaller reads fetch this much


def upload_box(event: Any, *, config: Config | None = None) -> None:
    """Deliver the finalized object of ``event`` to Box (see the module docstring).

    Raises TransientError (retry: network, 429/5xx, not-yet-there) or PermanentError (auth,
    config, bad ``_run.json``); returns quietly for objects that are not Box's to deliver.
    """
    if config is None:
        from shared.runtime import config as runtime_config

        config = runtime_config()
    obj = parse_storage(event)
    located = locate_data_file(obj, config.export_prefix)
    if located is None:
        return
    run, filename = located
    with log.bind(run_id=run.run_id, table=run.source.label, destination=DESTINATION, object=obj.name):
        routing = _routing(obj, run)
        if routing is None:
            return
        if config.destinations.box is None:
            raise ConfigError("destinations.box: run routes files to 'box' but no Box destination is configured")
        _deliver(obj, filename, routing, config)


def _routing(obj: StorageObject, run: RunFolder) -> TableExport | None:
    """The run's TableExport when it routes to Box, else None (logged)."""
    routing = routing_for(obj, run)
    if routing is None:
        return None
    if DESTINATION not in routing.destinations:
        logger.info("run not routed to box; ignored", destinations=list(routing.destinations))
        return None
    return routing


def _deliver(obj: StorageObject, filename: str, routing: TableExport, config: Config) -> None:
    settings = config.destinations.box
    assert settings is not None
    run = RunFolder(config.export_prefix, routing.source, routing.date, routing.run_id)
    remote_path = f"{remote_folder(DESTINATION, run, routing.file_name).path}/{filename}"
    started = time.monotonic()
    delivered = _upload(obj, remote_path, settings)
    if delivered is None:
        return
    live, result = delivered
    elapsed = time.monotonic() - started
    logger.info(
        "delivered to box",
        status=result.status,
        remote_path=remote_path,
        remote_id=result.remote_id,
        size=result.size,
        sha1=result.sha1,
        duration_s=round(elapsed, 3),
        mb_per_s=round(result.size / 1e6 / elapsed, 1) if elapsed > 0 else None,
    )
    if not _record_sha1(obj, live, result.sha1):
        # Replaced while we uploaded: the new generation's event delivers and reports it.
        logger.warning("object replaced during delivery; no receipt for the old generation")
        return
    receipt = DeliveryReceipt(
        run_id=routing.run_id,
        bucket=obj.bucket,
        object=obj.name,
        generation=obj.generation or live.generation,
        destination=DESTINATION,
        remote_path=remote_path,
        size=result.size,
        sha1=result.sha1,
        status=result.status,
        remote_id=result.remote_id,
    )
    pubsub.publish(DELIVERIES, receipt, run_id=routing.run_id, destination=DESTINATION)


def _upload(obj: StorageObject, remote_path: str, settings: BoxSettings) -> tuple[gcs.ObjectInfo, PutResult] | None:
    """Stream the event's bytes into Box; None when the event is stale (object gone or replaced)."""
    for _ in range(READ_ATTEMPTS):
        live = gcs.stat(obj.bucket, obj.name)
        if live is None:
            logger.info("object no longer exists; stale event ignored", generation=obj.generation)
            return None
        if _replaced(obj, live):
            logger.info(
                "object was replaced; stale event ignored", generation=obj.generation, live_generation=live.generation
            )
            return None
        try:
            with GenerationStream(obj.bucket, obj.name, live.generation) as stream:
                result = for_settings(settings).put(remote_path, stream, live.size, sha1=live.metadata.get("sha1"))
        except gcs.ObjectMissing:
            # The generation we read vanished. On fake-gcs-server a metadata patch (another
            # destination recording its sha1) makes a new generation of the same bytes: read again.
            logger.info("object generation changed while reading; reading the live one", generation=live.generation)
            continue
        return live, result
    raise TransientError(f"gs://{obj.bucket}/{obj.name}: the object kept changing while it was read; will retry")


class GenerationStream(io.RawIOBase):
    """One object generation read with bounded memory: each ``read(n)`` is one ranged GET read
    in a single call (google-cloud-storage's ``single_shot_download``), so a part costs one
    request and no 8 KiB read loop; that loop was the uploader's main CPU cost. Like
    ``gcs.open_object`` otherwise (errors mapped by ``gcs.mapped_errors``)."""

    def __init__(self, bucket: str, name: str, generation: int) -> None:
        super().__init__()
        self._what = f"reading gs://{bucket}/{name}#{generation}"
        blob = clients.storage_client().bucket(bucket).blob(name, generation=generation)
        with gcs.mapped_errors(self._what):
            self._reader = blob.open("rb", chunk_size=READ_CHUNK_BYTES, single_shot_download=True)

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        with gcs.mapped_errors(self._what):
            return bytes(self._reader.read(-1 if size is None else size))

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self._reader.close()
        finally:
            super().close()


def _record_sha1(obj: StorageObject, live: gcs.ObjectInfo, sha1: str) -> bool:
    """Custom metadata ``sha1`` on the object, as long as it still holds the delivered bytes.

    False when the object was replaced meanwhile. The patch is merged into the object's
    metadata (other keys, like another destination's, are kept).
    """
    current = live
    for _ in range(READ_ATTEMPTS):
        if current.metadata.get("sha1") == sha1:
            return True
        try:
            gcs.set_metadata(obj.bucket, obj.name, {"sha1": sha1}, if_generation_match=current.generation)
            return True
        except PermanentError:
            now = gcs.stat(obj.bucket, obj.name)
            if now is None or _replaced(obj, now):
                return False
            if now.generation == current.generation:
                raise
            current = now  # same bytes, new generation (a concurrent metadata patch on fake-gcs-server)
    raise TransientError(f"gs://{obj.bucket}/{obj.name}: metadata kept changing; will retry")


def _replaced(obj: StorageObject, live: gcs.ObjectInfo) -> bool:
    """True when the live object holds other bytes than the event announced (a stale event).

    A new generation with the same size and hashes is the same content: fake-gcs-server gives
    a metadata patch (our own ``sha1``) a new generation, and a rewrite of identical bytes
    needs no other delivery than this one.
    """
    if not obj.generation or live.generation == obj.generation:
        return False
    if obj.md5 is None and obj.crc32c is None:
        return True
    same_md5 = obj.md5 is None or obj.md5 == live.md5
    same_crc = obj.crc32c is None or obj.crc32c == live.crc32c
    return not (live.size == obj.size and same_md5 and same_crc)
