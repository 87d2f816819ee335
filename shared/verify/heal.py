"""Self-heal: re-deliver the files a destination is missing or holds wrong, then verify again.

How a file is re-delivered, the same way in the cloud and on the local stack: the GCS object is
rewritten onto itself (same bytes, new generation) with custom metadata naming the
destination to heal. The new generation fires a fresh OBJECT_FINALIZE, so Eventarc (locally:
fake-gcs-server's notification + the relay) runs the upload functions again, exactly as for
the first delivery. An upload function that sees ``offsite-heal-destination`` on the event's
object delivers only to that destination (the other uploader ignores the event); either way
``put`` skips destinations that already hold the same bytes.
(Checked on fake-gcs-server 1.54: a rewrite onto itself emits OBJECT_DELETE for the old
generation and OBJECT_FINALIZE for the new one, with the new metadata.)

Attempts are bounded across instances: attempt ``k`` is claimed with the marker
``heal-{k}.json`` (``if_generation_match=0``) before any object is touched, up to
``verify.max_heal_attempts`` per (run, destination). The marker records each file's generation
before the rewrite; a delivery receipt for a newer generation marks that file's re-delivery
done (``heal-{k}.done/{file}``). When every file of the attempt is done the round is settled
and the next receipt-triggered verify publishes the round's result.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from shared import log
from shared.delivery.ledger import ledger_key
from shared.errors import PermanentError
from shared.gcp import clients, gcs
from shared.ids import DestinationId
from shared.layout import DELIVERED_MANIFEST_NAME, is_manifest_copy
from shared.manifest import Manifest, ManifestFile
from shared.messages import DeliveryReceipt
from shared.retry import retry_call
from shared.verify.markers import Kind, VerifyState, claim, mark_done, marker, read
from shared.verify.runs import RunObjects

HEAL_DESTINATION_KEY = "offsite-heal-destination"
HEAL_ATTEMPT_KEY = "offsite-heal-attempt"

logger = log.get_logger(__name__)


def heal_destination(metadata: dict[str, str] | None) -> str | None:
    """For the upload functions: the one destination a re-delivery is for (None: every routed one)."""
    value = (metadata or {}).get(HEAL_DESTINATION_KEY) or ""
    return value or None


@dataclass(frozen=True)
class HealPlan:
    attempt: int
    files: dict[str, int]  # file name → GCS generation before the rewrite
    object_names: dict[str, str]  # file name → object name
    gone: tuple[str, ...]  # in the manifest but no longer in GCS (expired): cannot be re-delivered


def plan(manifest: Manifest, objects: RunObjects, names: tuple[str, ...], attempt: int) -> HealPlan:
    files: dict[str, int] = {}
    object_names: dict[str, str] = {}
    gone = []
    for name in names:
        entry = manifest.file(name)
        obj: Any = None
        if entry is None and is_manifest_copy(name):  # the run's manifest copy: re-deliver the manifest
            entry = ManifestFile(name=name, object=objects.folder.delivered_manifest_name, size=0)
            obj = objects.object(entry) or _seal_older_run(objects)
        elif entry is not None:
            obj = objects.object(entry)
        if entry is None or obj is None:
            gone.append(name)
            continue
        files[name] = obj.generation
        object_names[name] = obj.name
    return HealPlan(attempt, files, object_names, tuple(gone))


def _seal_older_run(objects: RunObjects) -> Any:
    """A run delivered before manifest copies existed has no ``_manifest.delivered.json``, so its
    copy could never be healed: write it now (``_manifest.json`` with the SHA-1s its deliveries
    recorded) and heal with that. None when it cannot be written (a data file expired from GCS)."""
    from shared.delivery.manifest_copy import seal

    raw = gcs.read_bytes(objects.bucket, objects.folder.manifest_name)
    if raw is None:
        return None
    try:
        return seal(objects.bucket, objects.folder, raw)
    except PermanentError as exc:
        logger.warning("cannot write the delivered manifest of an older run", error=str(exc))
        return None


def start(
    bucket: str,
    prefix: str,
    destination: str,
    heal: HealPlan,
    *,
    reason: str,
    now: dt.datetime,
    state_bucket: str,
) -> bool:
    """Claim heal attempt ``heal.attempt`` (a marker in ``state_bucket``) and rewrite its objects
    in the exports ``bucket``. False: another instance has it.

    A rewrite that fails transiently raises after the claim; that attempt then settles through
    the sweep (verify.deadline_minutes after it started) rather than by receipts.
    """
    body = {
        "attempt": heal.attempt,
        "destination": destination,
        "files": heal.files,
        "gone": list(heal.gone),
        "reason": reason,
        "started_at": now.isoformat(),
    }
    if not claim(state_bucket, marker(prefix, destination, Kind.HEAL, heal.attempt), body):
        logger.info("heal attempt already claimed", attempt=heal.attempt)
        return False
    for _name, object_name in sorted(heal.object_names.items()):
        # without the destination's ledger entry: a damaged copy of the same size and mtime
        # would otherwise be recalled as the right one, and never written again
        marks = {HEAL_DESTINATION_KEY: destination, HEAL_ATTEMPT_KEY: str(heal.attempt)}
        rewrite(bucket, object_name, marks, forget=(ledger_key(DestinationId.parse(destination)),))
    logger.warning(
        "self-heal started", attempt=heal.attempt, files=sorted(heal.files), gone=list(heal.gone), reason=reason
    )
    return True


def rewrite(bucket: str, name: str, metadata: dict[str, str], *, forget: tuple[str, ...] = ()) -> int:
    """Rewrite ``name`` onto itself with ``metadata`` merged in and the keys ``forget`` left out;
    returns the new generation.

    GCS refuses a rewrite onto itself that changes nothing; the metadata is the change.
    """
    gcs_bucket = clients.storage_client().bucket(bucket)
    what = f"rewriting {gcs.uri(bucket, name)} for re-delivery"

    def once() -> int:
        with gcs.mapped_errors(what):
            source = gcs_bucket.get_blob(name)
            if source is None:
                raise PermanentError(f"{what}: the object is gone")
            target = gcs_bucket.blob(name)
            merged = {**(source.metadata or {}), **metadata}
            target.metadata = {k: v for k, v in merged.items() if k not in forget}
            token, _, _ = target.rewrite(source, if_source_generation_match=source.generation)
            while token is not None:  # large objects across storage classes rewrite in steps
                token, _, _ = target.rewrite(source, token=token, if_source_generation_match=source.generation)
            return int(target.generation or 0)

    return retry_call(once, what, attempts=4)


def attempt_body(bucket: str, prefix: str, destination: str, attempt: int) -> dict[str, Any] | None:
    return read(bucket, marker(prefix, destination, Kind.HEAL, attempt))


def note_receipt(
    bucket: str, prefix: str, receipt: DeliveryReceipt, state: VerifyState, body: dict[str, Any]
) -> VerifyState:
    """Mark the receipt's file done when it re-delivered a generation newer than the heal's rewrite."""
    files = body.get("files") or {}
    name = receipt.object.removeprefix(prefix)
    if name == DELIVERED_MANIFEST_NAME:  # the manifest copy is healed under its remote name
        name = next((n for n in files if is_manifest_copy(n)), name)
    before = files.get(name)
    if before is None or receipt.generation <= int(before):
        return state
    mark_done(
        bucket,
        prefix,
        receipt.destination,
        state.round,
        name,
        {"generation": receipt.generation, "remote_path": receipt.remote_path, "status": receipt.status},
    )
    done = dict(state.done)
    done[state.round] = frozenset(done.get(state.round, frozenset()) | {name})
    return VerifyState(state.heal_attempts, state.results, state.incompletes, done)


def settled(state: VerifyState, body: dict[str, Any] | None) -> bool:
    """Every file of the current heal attempt has been re-delivered (receipted)."""
    if state.round == 0:
        return True
    if body is None:  # marker unreadable: do not wait forever on it
        return True
    wanted = set((body.get("files") or {}).keys())
    return wanted <= set(state.done.get(state.round, frozenset()))


def started_at(body: dict[str, Any] | None) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str((body or {})["started_at"]))
    except (KeyError, ValueError):
        return None
