"""Self-describing copies: each destination receives the run's manifest after its data files.

A copy at a destination can then be understood and restored with nothing from Google Cloud
(``offsite restore`` reads it there). What is delivered is the *delivered manifest*
``_manifest.delivered.json``: the run's ``_manifest.json`` with every file's SHA-1 filled in
(BigQuery reports none; each delivery records it on the object, see
:mod:`shared.delivery.ledger`), written once next to it (``if_generation_match=0``; the same
bytes whoever writes it). It goes through the one delivery operation
(:func:`shared.delivery.operation.deliver`) — same unchanged check, metadata and receipt — and
verify checks it like any other file (present, same bytes). At the destination it is named
``_manifest.json`` (``_manifest_{run_id}.json`` in a folder shared with other runs:
:func:`shared.layout.remote_manifest_name`).

"After the data files" without shared state: the uploader tries after every data file it
delivers and on the manifest's own finalize event, and sends the manifest only when every file
it lists is at the destination with its size. Whichever comes last finds the run complete: a
data file finished before the manifest was written is seen by the manifest's event; one
finished after it sees the manifest. Both triggers are needed (either may come last); when
both find the run complete, the second finds the copy unchanged and publishes **no receipt**
(the first one's receipt already started verify), so a run makes one manifest-copy receipt per
destination. A retried invocation whose first try put the copy but died before its receipt
also publishes none; verify's sweep then decides that (run, destination).

The finalize event of ``_manifest.delivered.json`` delivers only when self-heal rewrote it
(``offsite-heal-destination`` in its metadata, :mod:`shared.verify.heal`): then to that one
destination, always with a receipt (the heal round waits for it). Its first write is done by
a trigger above, which delivers it itself, so that event is acknowledged without any call.
"""

from __future__ import annotations

import json
from typing import Any

from shared import log
from shared.delivery.ledger import SHA1_KEY
from shared.delivery.operation import Delivery, Stale, deliver
from shared.destinations.base import Destination, normalize_path
from shared.errors import PermanentError, RejectedInput
from shared.events import StorageObject
from shared.gcp import gcs, reader
from shared.layout import RunFolder, remote_folder, remote_manifest_name
from shared.manifest import Manifest
from shared.messages import DeliveryReceipt, TableExport

logger = log.get_logger(__name__)


def missing_at(manifest: Manifest, destination: Destination, folder_path: str) -> list[str]:
    """Files of ``manifest`` not (yet) at ``folder_path`` with their exported size."""
    base = normalize_path(folder_path)
    head = base + "/" if base else ""
    sizes = {
        normalize_path(f.path)[len(head) :]: f.size
        for f in destination.list(base)
        if normalize_path(f.path).startswith(head)
    }
    return [f.name for f in manifest.files if sizes.get(f.name) != f.size]


def delivered_manifest_bytes(bucket: str, folder: RunFolder, raw: bytes) -> bytes:
    """``raw`` (the run's ``_manifest.json``) with each file's ``sha1`` set: from the manifest,
    else the object's recorded SHA-1, else by reading the object. PermanentError when a file is
    gone from GCS."""
    data: dict[str, Any] = json.loads(raw)
    objects = {o.name: o for o in gcs.list_prefix(bucket, folder.prefix)}
    for entry in data["files"]:
        if entry.get("sha1"):
            continue
        obj = objects.get(entry["object"])
        if obj is None:
            raise PermanentError(f"{gcs.uri(bucket, entry['object'])}: exported file is gone; cannot seal the manifest")
        entry["sha1"] = obj.metadata.get(SHA1_KEY) or reader.sha1_of_live(bucket, obj.name)
    return json.dumps(data, indent=2, sort_keys=True).encode()


def seal(bucket: str, folder: RunFolder, raw: bytes) -> gcs.ObjectInfo:
    """The run's ``_manifest.delivered.json``, written now if it is not there yet."""
    name = folder.delivered_manifest_name
    info = gcs.stat(bucket, name)
    if info is None:
        body = delivered_manifest_bytes(bucket, folder, raw)
        if gcs.write_if_absent(bucket, name, body, "application/json"):
            logger.info("delivered manifest written", object=name)
        info = gcs.stat(bucket, name, missing_ok=False)
    assert info is not None
    return info


def deliver_manifest_if_ready(
    bucket: str,
    folder: RunFolder,
    routing: TableExport,
    destination: Destination,
    *,
    budget_s: float | None = None,
    state_bucket: str | None = None,
    healing: bool = False,
) -> DeliveryReceipt | None:
    """Deliver the run's manifest to ``destination`` when it exists in GCS and every data file it
    lists is already there; None (logged) otherwise, when it changed meanwhile, or when the
    destination already held it (no receipt unless ``healing``: a heal round waits for one)."""
    raw = gcs.read_bytes(bucket, folder.manifest_name)
    if raw is None:
        logger.info("manifest not written yet; its finalize event delivers it", manifest=folder.manifest_name)
        return None
    try:
        manifest = Manifest.from_json(raw, gcs.uri(bucket, folder.manifest_name))
    except RejectedInput as exc:  # verify reports a bad manifest (once); nothing to deliver
        logger.warning("manifest is malformed; not delivered", error=str(exc))
        return None
    run = RunFolder(folder.export_prefix, routing.source, routing.date, routing.run_id)
    remote = remote_folder(destination.abilities.layout, run, routing.file_name)
    waiting = missing_at(manifest, destination, remote.path)
    if waiting:
        logger.info("data files still on their way; the last one's delivery sends the manifest", waiting=waiting[:5])
        return None
    info = seal(bucket, folder, raw)
    name = remote_manifest_name(remote, routing.run_id)
    obj = StorageObject.from_info(info)
    path = f"{remote.path}/{name}" if remote.path else name
    try:
        return deliver(
            Delivery(obj, destination, path, routing.run_id, budget_s, state_bucket, receipt_if_unchanged=healing)
        )
    except Stale as stale:
        logger.info("manifest changed while delivered; its new generation's event delivers it", reason=str(stale))
        return None
