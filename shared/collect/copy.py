"""collect_copy: one listed file → a verified copy at every destination → the post-action.

Never twice: the file version (:class:`~shared.collect.selection.FileIdentity`) is claimed for
the run (``shared.collect.state.claim``), each destination's verified copy is recorded once, and
the version is marked ``done`` last; a retry, a rerun or an overlapping run finds those records
and does nothing again. Never half: the bytes stream from SFTP straight into the destination's
``put`` (no temp file), which makes a file appear whole or not at all (Box upload commit, SFTP
partial name + rename); an interrupted copy is redone by the retry, and what ``put`` finds at
the path is replaced unless its bytes are provably the same.

A copy counts once the destination reports the file with the right size and SHA-1 (its own hash,
or the bytes read back and hashed); only when every destination holds one does the post-action
(keep, move to ``processed_dir``, delete) run — and only on the same version of the file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared import log
from shared.collect import resume, runs, state
from shared.collect.listing import job_named, open_source
from shared.collect.messages import CollectFile
from shared.collect.resume import Budget, Paused
from shared.collect.selection import FileIdentity, identity_of
from shared.collect.source import SftpSource
from shared.config import Config
from shared.config.collect import CollectJob
from shared.destinations.base import ByteStream, DeliveryLedger, Destination, Labelled, Readable, Resumable
from shared.destinations.factory import opened
from shared.errors import PermanentError, RejectedInput, TransientError

logger = log.get_logger(__name__)
CHUNK = 1024 * 1024


class SourceChanged(TransientError):
    """The partner's file is not its listed size any more (it grew or shrank while read)."""


class HashingReader:
    """A source stream that hashes (SHA-1, MD5) and counts what passes through it. With
    ``expected`` it holds the source to that size: SourceChanged on a byte past it or an end
    before it, raised to the destination's ``put`` before it sees the bytes (a put calls a
    wrong size a PermanentError, but a partner file that changed is left for the next run)."""

    def __init__(self, stream: ByteStream, expected: int | None = None, what: str = "source") -> None:
        self._stream = stream
        self.expected, self.what = expected, what
        self.sha1 = hashlib.sha1()
        self.md5 = hashlib.md5()
        self.bytes_read = 0
        self.status = ""

    def read(self, size: int = -1, /) -> bytes:
        data = self._stream.read(size)
        if self.expected is not None:
            if self.bytes_read + len(data) > self.expected:
                raise SourceChanged(f"{self.what}: longer than the listed {self.expected} bytes; it changed")
            if not data and size != 0 and self.bytes_read < self.expected:
                raise SourceChanged(
                    f"{self.what}: ends after {self.bytes_read} bytes, listed with {self.expected}; it changed"
                )
        self.sha1.update(data)
        self.md5.update(data)
        self.bytes_read += len(data)
        return data

    def drain(self) -> None:
        """Read what ``put`` left unread (it proved the copy unchanged early), for the whole-file hashes."""
        while self.read(CHUNK):
            pass

    def close(self) -> None:
        self._stream.close()


def copy_file(
    config: Config, message: CollectFile, *, now: dt.datetime | None = None, budget_s: float | None = None
) -> str:
    """The stage's work (module docstring). Returns the file's outcome: ``collected``,
    ``already`` (collected before), ``changed`` (not the listed version any more: the next
    listing judges the new one), or ``continuing`` (the time budget ran out: checkpointed, the
    claim kept, the message published again; no outcome is recorded yet). TransientError →
    retry; PermanentError → the file's outcome is ``failed`` and the error propagates to be
    reported. ``budget_s`` overrides the config's ``delivery.budget_s`` (tests)."""
    now = now or dt.datetime.now(dt.UTC)
    job = job_named(config, message.collect)
    budget = Budget.starting_now(
        config.delivery.budget_s if budget_s is None else budget_s, config.state_bucket_name, job.name
    )
    depth, allowed = message.name.count("/"), job.max_depth if job.recursive else 0
    if depth > allowed:  # never listed so: not a message of this job's listing
        raise RejectedInput(
            f"collect file.name: {message.name!r} is {depth} folder level(s) below {job.directory}; "
            f"collect job {job.name!r} takes files at most {allowed} level(s) down"
            + ("" if job.recursive else " (it is not recursive)")
        )
    identity = identity_of(job.partner, job, message.name, message.size, message.mtime)
    with log.bind(collect=job.name, run_id=message.run_id, file=identity.path):
        try:
            status = _copy_claimed(config, job, message, identity, now, budget)
        except Changed as exc:
            _settle(config, job, message, identity, runs.Outcome(identity.key, message.name, "changed", 0, str(exc)))
            return "changed"
        except PermanentError as exc:
            _settle(config, job, message, identity, runs.Outcome(identity.key, message.name, "failed", 0, str(exc)))
            raise
        if status == "continuing":
            return status
        size = message.size if status == "collected" else 0
        _settle(config, job, message, identity, runs.Outcome(identity.key, message.name, status, size))
        return status


def _settle(
    config: Config,
    job: CollectJob,
    message: CollectFile,
    identity: FileIdentity,
    outcome: runs.Outcome,
    *,
    unless_settled: bool = False,
) -> None:
    runs.save_outcome(config.state_bucket_name, job.name, message.run_id, outcome, unless_settled=unless_settled)
    runs.finish_if_complete(config, job.name, message.run_id, dt.datetime.now(dt.UTC))


def settle_dead_letter(config: Config, message: CollectFile, reason: str) -> None:
    """The file's copy was dead-lettered (it failed transiently on every delivery): its outcome
    is ``failed`` with ``reason``, as a permanent failure's is, so the run completes and reports
    instead of waiting for the file; an outcome recorded already stands. The next listing takes
    the file again (it is not done)."""
    job = job_named(config, message.collect)
    identity = identity_of(job.partner, job, message.name, message.size, message.mtime)
    failed = runs.Outcome(identity.key, message.name, "failed", 0, reason)
    _settle(config, job, message, identity, failed, unless_settled=True)


def _copy_claimed(
    config: Config, job: CollectJob, message: CollectFile, identity: FileIdentity, now: dt.datetime, budget: Budget
) -> str:
    bucket = config.state_bucket_name
    if state.is_done(bucket, job.name, identity):
        logger.info("already collected")
        return "already"
    lease = dt.timedelta(minutes=config.collect.lease_minutes)
    generation = state.claim(bucket, job.name, identity, message.run_id, lease, now)
    try:
        return _copy_held(config, job, message, identity, budget)
    except Paused:
        # The claim stays held by this run: its continuation takes it again (same owner) and
        # refreshes the lease; should the continuation be lost, the lease ends and a later run
        # resumes from the checkpoint.
        resume.publish_continuation(message)
        generation = 0
        return "continuing"
    finally:
        if generation:
            state.release(bucket, job.name, identity, generation)


def _copy_held(config: Config, job: CollectJob, message: CollectFile, identity: FileIdentity, budget: Budget) -> str:
    """The copy under the version's claim (:func:`_copy_claimed`). Raises Paused."""
    bucket = config.state_bucket_name
    if state.is_done(bucket, job.name, identity):  # finished by the claim's previous holder
        return "already"
    source = open_source(config, job)
    current = source.stat(message.name)
    if current is None or (current.size, current.mtime) != (message.size, message.mtime):
        if current is None and _all_copied(bucket, job, identity):
            return _finish(bucket, job, identity, message, "post-action done before an interruption")
        logger.warning("file changed or gone since it was listed; the next listing judges it", now=str(current))
        path = job.target_path(message.name)
        resume.forget(bucket, job.name, [str(d) for d in job.destinations], path, identity)
        raise Changed("gone since listed" if current is None else "changed since listed")
    copies = [_copy_to(config, job, source, message, identity, dest, budget) for dest in job.destinations]
    again = source.stat(message.name)
    if again is None:
        logger.warning("file gone while it was copied; no post-action, its copies are kept")
        raise Changed("gone while copied; its copies are kept")
    if (again.size, again.mtime) != (message.size, message.mtime):
        logger.warning("file changed while it was copied; no post-action, the next listing takes the new one")
        made = [record for record, fresh in copies if fresh]
        raise Changed(_drop_copies_made(config, job, identity, job.target_path(message.name), made))
    _post_action(source, job, message.name)
    return _finish(bucket, job, identity, message, "", records=[r.destination for r, _ in copies])


class Changed(Exception):
    """The file is not the listed version any more: its outcome is ``changed`` (why: the message)."""


def _drop_copies_made(
    config: Config, job: CollectJob, identity: FileIdentity, path: str, made: list[state.CopyRecord]
) -> str:
    """The copies this copy just made of a file rewritten meanwhile may mix old and new bytes:
    deleted where they were new files (and their records), so none stays; one that is a new
    version of an earlier file is kept (deleting it would take the earlier versions with it)
    until the next run replaces it, and named. Returns the outcome's reason."""
    kept = []
    for record in made:
        if record.status != "uploaded":
            if record.status != "unchanged":
                kept.append(record.remote_path)
            continue
        with opened(record.destination, config) as dest:
            dest.delete(path)
        state.forget_copy(config.state_bucket_name, job.name, identity, record.destination)
        logger.warning("copy of the changed file deleted", destination=record.destination, remote=record.remote_path)
    note = f"; a copy that may mix old and new bytes until then: {', '.join(kept)}" if kept else ""
    return f"changed while copied: the copy made is deleted, the next run takes the new version{note}"


def _all_copied(bucket: str, job: CollectJob, identity: FileIdentity) -> bool:
    return all(state.copy_record(bucket, job.name, identity, str(d)) for d in job.destinations)


def _finish(
    bucket: str, job: CollectJob, identity: FileIdentity, message: CollectFile, note: str, records: Any = ()
) -> str:
    body = {
        "run_id": message.run_id,
        "destinations": [str(d) for d in job.destinations],
        "post_action": job.post_action,
    }
    state.mark_done(bucket, job.name, identity, body)
    logger.info("collected", size=message.size, destinations=list(records) or body["destinations"], note=note or None)
    return "collected"


def _copy_to(
    config: Config,
    job: CollectJob,
    source: SftpSource,
    message: CollectFile,
    identity: FileIdentity,
    dest_id: str,
    budget: Budget,
) -> tuple[state.CopyRecord, bool]:
    """The destination's verified copy: recorded before, or put now (within ``budget``: Paused
    when it runs out), verified and recorded; and whether it was made now."""
    bucket = config.state_bucket_name
    known = state.copy_record(bucket, job.name, identity, str(dest_id))
    if known is not None:
        return known, False
    path = job.target_path(message.name)
    with log.bind(destination=str(dest_id)), opened(dest_id, config) as dest:
        ledger = state.StateLedger(bucket, job.name, str(dest_id)) if dest.abilities.needs_ledger else None
        copy = copy_verified(dest, source, message, identity, path, ledger, budget)
        record = state.CopyRecord(
            partner=identity.partner,
            source_path=identity.path,
            size=identity.size,
            mtime=identity.mtime,
            destination=str(dest_id),
            remote_path=dest.location(copy.path),
            sha1=copy.sha1,
            md5=copy.md5,
            check=copy.check,
            status=copy.status,
            copied_at=dt.datetime.now(dt.UTC).isoformat(),
        )
        state.save_copy(bucket, job.name, identity, record)
        logger.info(
            "copy verified", status=copy.status, remote_path=record.remote_path, check=copy.check, sha1=copy.sha1
        )
        return record, True


@dataclass(frozen=True)
class VerifiedCopy:
    path: str
    sha1: str
    md5: str
    check: str
    status: str


def copy_verified(
    dest: Destination,
    source: SftpSource,
    message: CollectFile,
    identity: FileIdentity,
    path: str,
    ledger: DeliveryLedger | None = None,
    budget: Budget | None = None,
) -> VerifiedCopy:
    """One file's copy at one destination, without state records (the caller keeps those; the
    benchmark measures this): the copy the destination already holds by its identity labels, or
    the source streamed into ``put``; then verified (:func:`verify_copy`). With a ``budget`` a
    resumable destination copies until its deadline (:mod:`shared.collect.resume`; Paused)."""
    labelled = _labelled_copy(dest, source, message, identity, path)
    if labelled is not None:
        path, reader = labelled
    else:
        reader = _read_whole(
            source, message, identity, lambda r: _put(dest, path, r, message, identity, ledger, budget)
        )
    sha1, md5 = reader.sha1.hexdigest(), reader.md5.hexdigest()
    check = verify_copy(dest, path, message.size, sha1)
    return VerifiedCopy(path, sha1, md5, check, reader.status)


def _labelled_copy(
    dest: Destination, source: SftpSource, message: CollectFile, identity: FileIdentity, path: str
) -> tuple[str, HashingReader] | None:
    """The copy a destination that keeps labels (:class:`Labelled`, Drive) already holds of this
    file version, found by its identity labels, when its size and hashes match the source's bytes
    (read, not uploaded); None when there is none, so it is put. This is what keeps a rerun from
    making a second copy when collect's own records in the state bucket are lost."""
    if not isinstance(dest, Labelled):
        return None
    found = dest.find_labelled(path, identity.labels())
    if found is None or found.size != message.size or not (found.sha1 or found.md5):
        return None  # none, or nothing that proves its bytes: put proves them
    reader = _read_whole(source, message, identity, lambda r: None)
    if found.sha1 not in (None, reader.sha1.hexdigest()) or found.md5 not in (None, reader.md5.hexdigest()):
        logger.warning("labelled copy holds other bytes than the source; uploading", remote_path=found.path)
        return None
    logger.info("labelled copy found; not uploading again", remote_path=found.path)
    return found.path, reader


def _put(
    dest: Destination,
    path: str,
    reader: HashingReader,
    message: CollectFile,
    identity: FileIdentity,
    ledger: DeliveryLedger | None,
    budget: Budget | None = None,
) -> str:
    if budget is not None and isinstance(dest, Resumable) and dest.abilities.resumable:
        labels = identity.labels() if isinstance(dest, Labelled) else None
        return resume.put_within(dest, str(dest.id), path, reader, identity, ledger, budget, labels).status
    if isinstance(dest, Labelled):
        return dest.put_labelled(path, reader, message.size, identity.labels(), ledger=ledger).status
    return dest.put(path, reader, message.size, ledger=ledger).status


def _read_whole(
    source: SftpSource, message: CollectFile, identity: FileIdentity, use: Callable[[HashingReader], str | None]
) -> HashingReader:
    """The file streamed through ``use`` (a put, or nothing) and read to its end, hashed; its
    ``status`` is what ``use`` returned. The reader holds the file to its listed size
    (:class:`SourceChanged` on a byte past it or an early end), so what it hashed is that size."""
    reader = HashingReader(source.open(message.name), message.size, identity.path)
    try:
        reader.status = use(reader) or "unchanged"
        reader.drain()
    finally:
        reader.close()
    return reader


def verify_copy(dest: Destination, path: str, size: int, sha1: str) -> str:
    """Prove the file at ``path`` holds ``size`` bytes hashing to ``sha1``: the destination's own
    SHA-1 when it reports one, else the bytes read back. Returns the check used ("sha1" or
    "read-back"). TransientError when the copy is missing or differs (the retry puts it again);
    PermanentError when the destination can neither hash nor be read."""
    where = f"{dest.name}:{path}"
    remote = dest.stat(path)
    if remote is None or remote.size != size:
        got = "missing" if remote is None else f"{remote.size} bytes"
        raise TransientError(f"copy at {where} is {got} after the upload, expected {size} bytes; copying again")
    if remote.sha1:
        if remote.sha1 != sha1:
            raise TransientError(f"copy at {where} has SHA-1 {remote.sha1}, the source {sha1}; copying again")
        return "sha1"
    if not isinstance(dest, Readable):
        raise PermanentError(f"{where}: this destination reports no SHA-1 and cannot be read back to verify a copy")
    digest, stream = hashlib.sha1(), dest.open(path)
    try:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    finally:
        stream.close()
    if digest.hexdigest() != sha1:
        raise TransientError(
            f"copy at {where} reads back as SHA-1 {digest.hexdigest()}, the source {sha1}; copying again"
        )
    return "read-back"


def _post_action(source: SftpSource, job: CollectJob, name: str) -> None:
    if job.post_action == "move":
        assert job.processed_dir is not None  # the config requires it with 'move'
        target = source.move(name, job.processed_dir)
        logger.info("source moved", to=target)
    elif job.post_action == "delete":
        source.delete(name)
        logger.info("source deleted")
