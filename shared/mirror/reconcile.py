"""The reconcile of a mirrored bucket: list both sides, report, fix the difference.

For each destination of a ``buckets[]`` entry (``mirror-reconciles``, on its schedule or asked
by ``offsite mirror reconcile``; a request naming no destination is handed on as one request per
destination, :func:`per_destination`, so each runs in an invocation of its own):

1. the bucket's selected objects are compared with the destination's ``{remote_folder}`` by the
   verify engine (:func:`shared.verify.engine.compare`, as for an export run): missing, extra,
   size differs, hash differs (SHA-1: the object's ``sha1`` metadata, recorded by its first
   delivery, against the destination's listing or the file read back);
2. a VerifyResult is reported on ``verify-results`` (run id ``mirror-{bucket}``, source
   ``{"mode": "bucket", "bucket": …}``): ``in_sync`` or ``mismatch`` naming what differs. With
   ``delete: keep`` the copies of deleted objects are listed as ``extra`` but expected, so they
   alone do not make a mismatch;
3. with ``fix`` (the default): every missing, differing or unhashed object is re-delivered by a
   ``delivery-continuations`` message (the one delivery operation, in the destination's
   function), and with ``delete: mirror`` every extra file is deleted at once.

Listing and comparing must end within :data:`COMPARE_S`, or the reconcile stops (NoTimeLeft);
reading SHA-1s back from a destination that lists none goes on in the redelivery instead, from
where it stopped (:mod:`shared.verify.readback`).

An extra is a file whose name no object of the bucket holds when the destination has been
listed: the bucket is listed again before extras are judged (:func:`_without_live`), so an
object written during the reconcile (and delivered by its own event) is never taken for one,
and neither is an object that include/exclude leave out: its copy stays. At a destination that
folds case (Box, Drive) names are matched regardless of case, since ``Data/a`` and ``data/a``
are one file there; objects whose paths differ only in case (:func:`case_twins`) are reported
as a conflict (a mismatch naming them) and never deleted as extras.

The ``_offsite_versions/`` folder (copies kept by ``retention``, :mod:`versions`) is not part
of the comparison: never extra, never deleted. With ``retention`` an extra file is moved there
instead of deleted. Each destination's outcome is also kept as the bucket's *latest reconcile*
there (:mod:`latest`): retention prunes versions only while it is ``in_sync``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass

from shared import log
from shared.config import Config
from shared.config.buckets import VERSIONS_FOLDER, BucketMirror
from shared.delivery import checkpoint, ledger
from shared.destinations import factory
from shared.destinations.base import Destination
from shared.errors import PermanentError
from shared.events import StorageObject
from shared.gcp import gcs
from shared.ids import DestinationId, Stage
from shared.layout import RemoteFolder
from shared.manifest import Manifest, ManifestFile
from shared.messages import Source, VerifyResult
from shared.mirror import latest, versions
from shared.mirror.request import MirrorRequest
from shared.mirror.routing import (
    bucket_source,
    mirror_run_id,
    mirrorable,
    name_problem,
    remote_path,
)
from shared.reporting.results import report
from shared.verify import readback
from shared.verify.engine import Comparison, NoTimeLeft, ReadBack, before, compare

logger = log.get_logger(__name__)

COMPARE_S = 400.0
"""How long one destination's reconcile may list and compare in verify's 540 s, leaving the rest
to fix and report; one still comparing stops (NoTimeLeft) rather than being cut off and retried."""


@dataclass(frozen=True)
class BucketComparison:
    """The bucket against one destination: the engine's comparison (extras whose name a live
    object holds left out), the names compared by size only, and the case conflicts there."""

    comparison: Comparison
    unhashed: tuple[str, ...] = ()
    case_twins: tuple[str, ...] = ()
    unmirrorable: tuple[str, ...] = ()
    """Selected objects whose names cannot be mirrored (skipped, :func:`routing.name_problem`)."""


@dataclass(frozen=True)
class Reconciled:
    """One destination's outcome: what was found, what was done about it."""

    result: VerifyResult
    redelivered: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()


def per_destination(request: MirrorRequest, targets: tuple[DestinationId, ...]) -> list[MirrorRequest]:
    """A request for the whole bucket split into one per destination (published on
    ``mirror-reconciles`` by verify): each destination's listing, fixes and report then run in an
    invocation of their own, with its own 540 s, and one that cannot be reached now is retried
    alone instead of redoing the others."""
    return [request.model_copy(update={"destination": target}) for target in targets]


def selected_objects(mirror: BucketMirror, *, deadline: float | None = None) -> list[gcs.ObjectInfo]:
    """The bucket's live objects that the entry's include/exclude select, sorted by name (also
    those whose names cannot be mirrored: the comparison reports them, :func:`compare_bucket`).
    NoTimeLeft, saying what to do, when the listing is still going at ``deadline``."""
    with _advised(mirror, None):
        listed = _bucket_listing(mirror, deadline, "listing the bucket")
    return sorted((o for o in listed if mirror.selects(o.name)), key=lambda o: o.name)


def _bucket_listing(mirror: BucketMirror, deadline: float | None, what: str) -> list[gcs.ObjectInfo]:
    return gcs.fold_prefix(mirror.name, "", lambda infos: list(before(deadline, infos, what)))


def deadline_from_now() -> float:
    """Until when a reconcile invocation may list and compare (``time.monotonic()``)."""
    return time.monotonic() + COMPARE_S


@contextlib.contextmanager
def _advised(mirror: BucketMirror, destination: DestinationId | None) -> Iterator[None]:
    """A NoTimeLeft raised inside names the bucket (and destination) and says what to do."""
    try:
        yield
    except NoTimeLeft as exc:
        at = f" at {destination}" if destination else ""
        raise NoTimeLeft(
            f"mirror reconcile of gs://{mirror.name}{at}: {exc}; one reconcile has {COMPARE_S:.0f} s of verify's "
            f"540 s to list and compare: split the bucket into buckets[] entries with include patterns "
            "(docs/mirror.md, Limits)"
        ) from None


@dataclass(frozen=True)
class Asked:
    """What one reconcile invocation was asked (fix, or only compare and report; the message it
    answers and its caller's ``request_id``), and until when it may list and compare
    (``time.monotonic()``; None: no limit)."""

    fix: bool = True
    message_id: str | None = None
    deadline: float | None = None
    request_id: str | None = None


def reconcile_destination(
    mirror: BucketMirror, objects: list[gcs.ObjectInfo], destination_id: DestinationId, config: Config, asked: Asked
) -> Reconciled:
    """Compare, fix (``asked.fix``) and report one destination (module docstring); the comparison
    must be done by ``asked.deadline`` (NoTimeLeft, nothing fixed or reported)."""
    with factory.opened(destination_id, config) as destination, _advised(mirror, destination_id):
        compared = readback.bounded(  # a read-back out of time goes on in the redelivery
            config.state_bucket_name,
            latest.readback_name(mirror, destination_id),
            destination,
            lambda deadline, read_back: compare_bucket(
                mirror,
                objects,
                destination,
                download_hashes=config.verify.download_hashes,
                deadline=deadline,
                read_back=read_back,
            ),
            deadline=asked.deadline,
            stop_without_progress=True,
        )
        comparison = compared.comparison
        redelivered: tuple[str, ...] = ()
        deleted: tuple[str, ...] = ()
        if asked.fix:
            wanted = set(comparison.repairable) | set(compared.unhashed)
            redelivered = _redeliver(mirror, objects, destination_id, wanted)
            if mirror.delete == "mirror":
                deleted = _delete_extra(mirror, destination, comparison)
    result = result_for(mirror, destination_id, compared, redelivered, deleted, asked)
    latest.record(config, mirror, destination_id, result)  # first: a failure retries before anything is reported
    report(result, config=config)
    return Reconciled(result, redelivered, deleted)


def compare_bucket(
    mirror: BucketMirror,
    objects: list[gcs.ObjectInfo],
    destination: Destination,
    *,
    download_hashes: bool,
    deadline: float | None = None,
    read_back: ReadBack | None = None,
) -> BucketComparison:
    """The bucket's selected ``objects`` against ``destination``'s folder of the bucket, by the
    verify engine, without extras a live object holds (:func:`_without_live`); also the names
    whose SHA-1 is not known yet (compared by size only) and the case conflicts there."""
    suffix = destination.abilities.partial_suffix
    files = tuple(
        ManifestFile(
            name=_relative(mirror, o.name),
            object=o.name,
            size=o.size,
            md5=o.md5,
            crc32c=o.crc32c,
            generation=o.generation,
            sha1=ledger.bound_sha1(o),
        )
        for o in objects
        if name_problem(o.name, suffix) is None
    )
    unmirrorable = tuple(o.name for o in objects if not mirrorable(o.name, suffix))
    unhashed = tuple(f.name for f in files if not f.sha1)
    # The engine compares a manifest with a folder: the bucket's listing is this one's manifest.
    listing = Manifest(
        run_id=mirror_run_id(mirror.name),
        source=mirror_source(mirror),
        date="",
        bucket=mirror.name,
        prefix="",
        format="",
        compression=None,
        file_name="*",
        destinations=(str(destination.id),),
        job_id="",
        row_count=0,
        schema=[],
        files=files,
        created_at="",
    )
    comparison = compare(
        listing,
        destination,
        RemoteFolder(mirror.folder, exclusive=True),
        source_sha1=None if unhashed else (lambda f: f.sha1 or ""),
        download_hashes=download_hashes,
        deadline=deadline,
        read_back=read_back,
    )
    folds_case = destination.abilities.folds_case
    comparison = _without_live(mirror, _without_versions(comparison), folds_case=folds_case, deadline=deadline)
    twins = case_twins([f.name for f in files]) if folds_case else ()
    return BucketComparison(comparison, unhashed, twins, unmirrorable)


def _without_versions(comparison: Comparison) -> Comparison:
    """The comparison without what lies under ``_offsite_versions/`` (kept by retention)."""
    head = VERSIONS_FOLDER + "/"

    def keep(names: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(n for n in names if not n.startswith(head))

    return dataclasses.replace(
        comparison,
        extra=keep(comparison.extra),
        partial=keep(comparison.partial),
        in_flight=keep(comparison.in_flight),
    )


def _without_live(
    mirror: BucketMirror, comparison: Comparison, *, folds_case: bool, deadline: float | None
) -> Comparison:
    """The comparison without the extras whose name the bucket holds now: objects written (and
    delivered by their own events) after ``objects`` was listed, which with ``delete: mirror``
    would otherwise be deleted under a live object, and objects that include/exclude leave out,
    whose copies stay (as rclone's sync leaves excluded files unless told otherwise). With
    ``folds_case`` a name differing only in case is the same file."""
    if not comparison.extra:
        return comparison

    def key(name: str) -> str:
        return name.casefold() if folds_case else name

    live = set()
    for obj in _bucket_listing(mirror, deadline, "listing the bucket again"):
        with contextlib.suppress(PermanentError):  # a name that cannot be mirrored has no copy
            live.add(key(_relative(mirror, obj.name)))
    return dataclasses.replace(comparison, extra=tuple(n for n in comparison.extra if key(n) not in live))


def case_twins(names: list[str]) -> tuple[str, ...]:
    """The paths (files or folders) spelled two ways that differ only in case, e.g. ``Data/``
    and ``data/``: one path at a destination that folds case, so those objects cannot all be
    mirrored there as named. Sorted, one entry per spelling."""
    spellings: dict[str, set[str]] = {}
    for name in names:
        parts = name.split("/")
        for end in range(1, len(parts) + 1):
            path = "/".join(parts[:end]) + ("" if end == len(parts) else "/")
            spellings.setdefault(path.casefold(), set()).add(path)
    return tuple(sorted(p for found in spellings.values() if len(found) > 1 for p in found))


def _relative(mirror: BucketMirror, object_name: str) -> str:
    """An object's path inside the bucket's destination folder (its normalized name)."""
    path = remote_path(mirror, object_name)
    return path[len(mirror.folder) + 1 :] if mirror.folder else path


def _redeliver(
    mirror: BucketMirror, objects: list[gcs.ObjectInfo], destination: DestinationId, names: set[str]
) -> tuple[str, ...]:
    """A continuation per object to re-deliver: the destination's function delivers it."""
    sent = []
    for info in objects:
        if name_problem(info.name) is not None or _relative(mirror, info.name) not in names:
            continue
        ledger.forget(info, destination)  # the copy differs or is gone: what was recorded is not proof
        obj = StorageObject.from_info(info)
        checkpoint.publish_continuation(obj, destination, mirror_run_id(mirror.name))
        sent.append(info.name)
    if sent:
        logger.info("re-delivery requested", destination=str(destination), objects=len(sent))
    return tuple(sent)


def _delete_extra(mirror: BucketMirror, destination: Destination, comparison: Comparison) -> tuple[str, ...]:
    """``delete: mirror``: files in the bucket's folder with no live object (unfinished uploads of
    objects still being delivered are left alone); with ``retention`` moved to the versions."""
    doomed = [n for n in comparison.extra if n not in comparison.in_flight]
    for name in doomed:
        versions.remove_copy(mirror, destination, f"{mirror.folder}/{name}" if mirror.folder else name)
    if doomed:
        logger.info("extra files deleted (delete: mirror)", destination=str(destination.id), files=len(doomed))
    return tuple(doomed)


def result_for(
    mirror: BucketMirror,
    destination: DestinationId,
    compared: BucketComparison,
    redelivered: tuple[str, ...],
    deleted: tuple[str, ...],
    asked: Asked | None = None,
) -> VerifyResult:
    """The VerifyResult of one comparison and what was done about it (nothing: empty tuples),
    answering ``asked`` (its message and request ids)."""
    comparison, unhashed = compared.comparison, compared.unhashed
    kept = mirror.delete == "keep"
    wrong = (
        comparison.missing
        or comparison.size_differs
        or comparison.hash_differs
        or comparison.duplicates  # a path held twice (Drive): no one copy is the object's
        or (comparison.extra and not kept)
    )
    notes = [comparison.summary()]
    if compared.case_twins:
        wrong = True
        notes.append(
            f"case conflict: {', '.join(repr(n) for n in compared.case_twins)} differ only in case, one path at "
            f"{destination}; rename the objects so each path has one spelling"
        )
    if compared.unmirrorable:
        shown = ", ".join(repr(n) for n in compared.unmirrorable[:5])
        notes.append(f"{len(compared.unmirrorable)} object(s) not mirrored, their names cannot be kept: {shown}")
    if comparison.check_note:
        notes.append(f"{comparison.check}: {comparison.check_note}")
    if unhashed:
        notes.append(f"{len(unhashed)} object(s) not hashed yet, compared by size")
    if comparison.extra and kept:
        notes.append("extra files kept (delete: keep)")
    if redelivered:
        notes.append(f"{len(redelivered)} re-delivery(ies) requested")
    if deleted:
        notes.append(f"{len(deleted)} extra file(s) deleted (delete: mirror)")
    return VerifyResult(
        status="mismatch" if wrong else "in_sync",
        destination=destination,
        run_id=mirror_run_id(mirror.name),
        source=mirror_source(mirror),
        check="size-only" if unhashed else comparison.check,
        **comparison.counts(),
        heal_attempts=1 if redelivered or deleted else 0,  # it fixed something: a check confirms it
        reason="; ".join(notes),
        stage=Stage.MIRROR_RECONCILE,
        message_id=asked.message_id if asked else None,
        request_id=asked.request_id if asked else None,
    )


def mirror_source(mirror: BucketMirror) -> Source:
    """How results name a mirrored bucket: ``{"mode": "bucket", "bucket": NAME}``."""
    return bucket_source(mirror.name)
