"""transfer_sftp: one exported data file (a GCS finalize event) → the same bytes on each SFTP partner.

1. Only export data files of runs routed to ``sftp:NAME`` (``_run.json`` in the same GCS folder)
   are delivered; anything else is logged and ignored. Stale events (the object was replaced or
   deleted since) are ignored too: the live generation's own event delivers it.
2. Each partner is a separate delivery with its own receipt. A partner that fails does not stop
   the others; when one fails transiently the event is retried, and the partners already done
   find their file unchanged and skip it (no re-upload).
3. The bytes stream from GCS (that generation, never a temp file) through
   :class:`~shared.destinations.sftp.SftpDestination`, CRC32C-checked against GCS before the
   file is published, SHA-1 computed on the way.
4. "Unchanged" without a server-side hash: the object's custom metadata keeps, per partner,
   what was published (``offsite-sftp-NAME`` = path, size, server mtime, SHA-1). A redelivery
   whose remote file still has that size and mtime, and whose object ``sha1`` matches, is
   skipped without reading GCS. Without such an entry the remote file is downloaded and hashed.
5. The SHA-1 goes into the object's ``sha1`` metadata (if not set yet), then a DeliveryReceipt
   is published on ``deliveries``.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from shared import log
from shared.config import Config, SftpPartner
from shared.destinations.base import PutResult
from shared.destinations.sftp import LedgerEntry, SftpDestination
from shared.errors import OffsiteError, PermanentError, TransientError
from shared.events import StorageObject, parse_storage
from shared.gcp import gcs, pubsub
from shared.layout import RunFolder, remote_folder
from shared.messages import DeliveryReceipt, TableExport, VerifyResult
from shared.retry import retry_call
from shared.routing import locate_data_file, routing_for
from shared.sftp_pool import SessionPool
from shared.sftp_source import ObjectSource
from shared.topology import DELIVERIES

logger = log.get_logger(__name__)
PREFIX = "sftp:"
LEDGER_KEY = "offsite-sftp-{partner}"
ATTEMPTS = 3  # in-process tries per partner (a stale pooled connection, a blip); then Eventarc retries

_pools: dict[tuple[str, SftpPartner], SessionPool] = {}
_pools_lock = threading.Lock()


def transfer_sftp(event: Any, *, config: Config | None = None) -> None:
    """Deliver the finalized object of ``event`` to every SFTP partner its run is routed to.

    Raises TransientError (retry) when any partner failed transiently, PermanentError when one
    failed permanently (others failing permanently too are reported on verify-results first).
    """
    if config is None:
        from shared.runtime import config as runtime_config

        config = runtime_config()
    obj = parse_storage(event)
    located = locate_data_file(obj, config.export_prefix)
    if located is None:
        return
    run, filename = located
    with log.bind(run_id=run.run_id, table=run.source.label, object=obj.name):
        routing = _routing(obj, run)
        partners = [d[len(PREFIX) :] for d in routing.destinations if d.startswith(PREFIX)] if routing else []
        if not partners:
            return
        assert routing is not None
        failures: dict[str, OffsiteError] = {}
        for name in partners:
            try:
                with log.bind(destination=PREFIX + name):
                    _deliver(name, config.sftp_partner(name), obj, filename, routing, config)
            except Stale as stale:
                logger.info("stale event ignored", reason=str(stale), generation=obj.generation)
                return
            except (TransientError, PermanentError) as exc:
                failures[name] = exc
        _raise_for(failures, routing)


class Stale(Exception):
    """The object was deleted or now holds other bytes: the live generation's event delivers it."""


def live_object(obj: StorageObject) -> gcs.ObjectInfo:
    """The object as it is now, if it still holds the bytes the event announced (else Stale).

    Compared by content (size, md5, crc32c), not generation: fake-gcs-server gives a metadata
    patch (another destination recording ``sha1``) a new generation; real GCS does not.
    """
    live = gcs.stat(obj.bucket, obj.name)
    if live is None:
        raise Stale("the object no longer exists")
    if obj.generation and live.generation != obj.generation:
        same = (
            live.size == obj.size
            and (obj.md5 is None or obj.md5 == live.md5)
            and (obj.crc32c is None or obj.crc32c == live.crc32c)
            and (obj.md5 is not None or obj.crc32c is not None)
        )
        if not same:
            raise Stale(f"generation {obj.generation} was replaced by {live.generation} with other bytes")
    return live


def _routing(obj: StorageObject, run: RunFolder) -> TableExport | None:
    routing = routing_for(obj, run)
    if routing is not None and not any(d.startswith(PREFIX) for d in routing.destinations):
        logger.info("run not routed to SFTP; ignored", destinations=list(routing.destinations))
    return routing


def pool_for(name: str, partner: SftpPartner) -> SessionPool:
    """The process's session pool of a partner: warm instances reuse SSH connections."""
    with _pools_lock:
        key = (name, partner)
        if key not in _pools:
            _pools[key] = SessionPool(name, partner)
        return _pools[key]


class ObjectLedger:
    """The DeliveryLedger of one GCS object generation for one partner (its custom metadata)."""

    def __init__(self, partner: str, metadata: dict[str, str]) -> None:
        self.key = LEDGER_KEY.format(partner=partner)
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


def _deliver(
    name: str, partner: SftpPartner, obj: StorageObject, filename: str, routing: TableExport, config: Config
) -> None:
    run = RunFolder(config.export_prefix, routing.source, routing.date, routing.run_id)
    folder = remote_folder(PREFIX + name, run, routing.file_name, flat=partner.flat).path
    remote_rel = f"{folder}/{filename}" if folder else filename
    pool = pool_for(name, partner)

    def attempt() -> tuple[gcs.ObjectInfo, ObjectLedger, PutResult, str]:
        live = live_object(obj)  # fresh each try: metadata (ledger, sha1) and generation may have moved
        ledger = ObjectLedger(name, live.metadata)
        destination = SftpDestination(name, partner, ledger=ledger, pool=pool)
        source = ObjectSource(live)
        try:
            result = destination.put(remote_rel, source, live.size, sha1=live.metadata.get("sha1"))  # type: ignore[arg-type]
        except gcs.ObjectMissing:
            raise TransientError(
                f"{gcs.uri(live.bucket, live.name)}#{live.generation} vanished while reading"
            ) from None
        finally:
            source.close()
        return live, ledger, result, destination.remote_path(remote_rel)

    live, ledger, result, remote_path = retry_call(
        attempt, f"sftp put {name}", attempts=ATTEMPTS, initial_s=1.0, max_wait_s=10.0
    )
    logger.info("delivered to sftp", status=result.status, remote_path=remote_path, size=result.size, sha1=result.sha1)
    known_sha1 = live.metadata.get("sha1")
    if known_sha1 is not None and known_sha1 != result.sha1:
        logger.error(
            "object's sha1 metadata differs from the bytes read (CRC32C-checked); metadata kept", sha1=result.sha1
        )
    _record(obj, ledger, result.sha1 if known_sha1 is None else None)
    receipt = DeliveryReceipt(
        run_id=routing.run_id,
        bucket=live.bucket,
        object=live.name,
        generation=obj.generation or live.generation,
        destination=PREFIX + name,
        remote_path=remote_path,
        size=result.size,
        sha1=result.sha1,
        status=result.status,
    )
    pubsub.publish(DELIVERIES, receipt, run_id=routing.run_id, destination=PREFIX + name)


def _record(obj: StorageObject, ledger: ObjectLedger, sha1: str | None) -> None:
    """Merge ``sha1`` (when new) and the ledger entry into the object's metadata, on a generation
    that still holds the delivered bytes (a few tries: others patch the same object)."""
    updates = {ledger.key: ledger.updated} if ledger.updated else {}
    if sha1:
        updates["sha1"] = sha1
    if not updates:
        return
    last: PermanentError | None = None
    for _ in range(3):
        try:
            live = live_object(obj)
            if sha1 and live.metadata.get("sha1") not in (None, sha1):
                updates.pop("sha1", None)  # recorded meanwhile by another delivery; never overwritten
            gcs.set_metadata(live.bucket, live.name, updates, if_generation_match=live.generation)
            return
        except Stale as stale:
            logger.warning("object replaced during delivery; its metadata is not recorded", reason=str(stale))
            return
        except PermanentError as exc:
            last = exc
    logger.warning("could not record delivery metadata", error=str(last))


def _raise_for(failures: dict[str, OffsiteError], routing: TableExport) -> None:
    """Transient failures win (retry; the partners done skip as unchanged); permanent ones are
    reported, the last one raised so the stage reports it with its context."""
    if not failures:
        return
    transient = {n: e for n, e in failures.items() if isinstance(e, TransientError)}
    permanent = [(n, e) for n, e in failures.items() if not isinstance(e, TransientError)]
    to_report = permanent if transient else permanent[:-1]
    for name, exc in to_report:
        _report_failed(name, exc, routing)
    if transient:
        waits = [e.retry_after for e in transient.values() if isinstance(e, TransientError) and e.retry_after]
        summary = "; ".join(str(e) for e in transient.values())
        raise TransientError(
            f"{len(transient)} SFTP partner(s) to retry: {summary}", retry_after=max(waits, default=None)
        )
    raise permanent[-1][1]


def _report_failed(name: str, exc: OffsiteError, routing: TableExport) -> None:
    from shared.results import report

    try:
        report(
            VerifyResult(
                status="failed",
                stage="transfer_sftp",
                destination=PREFIX + name,
                run_id=routing.run_id,
                reason=str(exc),
                source=routing.source,
                date=routing.date.isoformat(),
            )
        )
    except Exception as report_exc:  # noqa: BLE001 - reporting must not turn into a retry storm
        logger.error("could not report a partner's failure", error=str(report_exc), original=str(exc))
