"""The SFTP Destination: a partner's directory on an SFTP server (paramiko; OpenSSH and others).

Paths are relative to the partner's ``directory``; a name ending with ``partial_suffix`` is
refused (RejectedInput: it would be taken for another file's leftover partial). A ``put``:

1. looks at the file already at the final name; when it has the same size and provably the same
   bytes (below), nothing is written and the result is ``unchanged``;
2. creates missing folders (race-safe), claims ``NAME.partial`` exclusively (a leftover from a
   dead attempt is taken over; one still growing means another delivery is writing it:
   TransientError), streams the source into it with pipelined writes (optionally over
   ``connections_per_file`` connections), and checks the partial's size (and SHA-1 when the
   server can hash);
3. publishes it with ``posix-rename@openssh.com`` (atomic replace), or, with
   ``posix_rename: false``, remove + rename (not atomic for a moment).

"Provably the same bytes", in this order: the server's SHA-1 (``hashing`` on); our ledger entry
for that path whose size *and* mtime still match the file (we published it and nobody touched
it since); else the existing file is downloaded and hashed. Size equality alone never counts.
"""

from __future__ import annotations

import builtins
import contextlib
import posixpath
from collections.abc import Iterator
from typing import Any, BinaryIO, Self, Unpack

from shared.config import Config, SftpPartner
from shared.destinations.base import (
    Abilities,
    ByteStream,
    DeliveryLedger,
    LedgerEntry,
    MemoryLedger,
    Progress,
    PutResult,
    PutViaResumable,
    RemoteFile,
    ResumeOptions,
    folder_path,
    normalize_path,
)
from shared.destinations.sftp.connect import SftpSession
from shared.destinations.sftp.files import (
    STALE_PROBE_S,
    attrs_of,
    claim_partial,
    is_file,
    is_folder,
    mkdirs,
    publish,
    remove_if_there,
    remove_quietly,
    subfolders,
    walk,
)
from shared.destinations.sftp.hashing import remote_sha1
from shared.destinations.sftp.pool import SessionPool, pool_for
from shared.destinations.sftp.reader import PipelinedReader, read_sha1
from shared.destinations.sftp.remove import remove_tree
from shared.destinations.sftp.resume import RESTART, Keep, PartialState, proven_prefix
from shared.destinations.sftp.stream import (
    ChunkFeeder,
    StaleResume,
    Streamed,
    close_handle,
    open_for_write,
    stream_to_handles,
)
from shared.errors import PermanentError, RejectedInput, TransientError
from shared.ids import DestinationId
from shared.log import get_logger

log = get_logger(__name__)
PARALLEL_MIN_BYTES = 64 * 1024 * 1024  # smaller files are not worth extra connections
Listed = list[tuple[str, int, int]]  # (path, size, mtime) of listed files; `list` is a method name in the class


class SftpDestination(PutViaResumable):
    """One partner's directory. Thread-safe: each call takes its own session from the pool."""

    def __init__(
        self,
        partner_name: str,
        partner: SftpPartner,
        *,
        ledger: DeliveryLedger | None = None,
        pool: SessionPool | None = None,
    ) -> None:
        """``pool``: a process-wide pool to borrow (not closed by ``close``); default: an own one."""
        self.partner_name = partner_name
        self.partner = partner
        self.id = DestinationId("sftp", partner_name)
        self.name = str(self.id)
        self.abilities = Abilities(
            hashes=frozenset({"sha1"}) if partner.hashing != "none" else frozenset(),
            # without posix-rename, replacing a file is remove + rename: not atomic for a moment
            atomic_put=partner.posix_rename,
            partial_suffix=partner.partial_suffix,
            layout="flat" if partner.flat else "nested",
            needs_ledger=True,
            resumable=True,
        )
        self.root = posixpath.normpath(partner.directory)
        self.ledger: DeliveryLedger = ledger if ledger is not None else MemoryLedger()
        self._owns_pool = pool is None
        self.pool = pool if pool is not None else SessionPool(partner_name, partner)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_pool:
            self.pool.close()

    def location(self, path: str) -> str:
        return self.remote_path(path)

    def remote_path(self, path: str) -> str:
        """The absolute server path of a destination-relative ``path``."""
        rel = normalize_path(path)
        return posixpath.join(self.root, rel) if rel else self.root

    # ---- Destination -----------------------------------------------------------------------

    @property
    def hashes(self) -> frozenset[str]:
        return self.abilities.hashes

    def put_resumable(
        self, path: str, source: ByteStream, size: int, **options: Unpack[ResumeOptions]
    ) -> PutResult | Progress:
        """See :class:`shared.destinations.base.Resumable`; the resume state is a
        :class:`~shared.destinations.sftp.resume.PartialState`."""
        sha1, resume, deadline = options.get("sha1"), options.get("resume"), options.get("deadline")
        rel = normalize_path(path)
        ledger = options.get("ledger") or self.ledger
        if not rel:
            raise ValueError("put needs a file path, not the destination root")
        self._refuse_partial_name(rel)
        final = self.remote_path(rel)
        partial = final + self.partner.partial_suffix
        with self.pool.session() as session:
            existing = attrs_of(session, final)
            if is_folder(existing):
                raise PermanentError(f"{self.name}: cannot write {final}: a folder is there")
            same_size = existing is not None and existing.st_size == size
            there: str | None = None  # SHA-1 of the existing same-size file, once known
            if same_size and sha1 is not None and resume is None:  # resuming: writing was decided
                there = self._existing_sha1(session, rel, final, existing, ledger, deadline)
                if there == sha1:
                    return PutResult(rel, size, sha1, "unchanged")
            mkdirs(session, posixpath.dirname(final))
            state = PartialState.from_dict(resume, partial)
            keep: Keep | PartialState = RESTART
            if state is not None:
                keep = proven_prefix(session, self.partner.hashing, state, probe_s=STALE_PROBE_S, deadline=deadline)
            if isinstance(keep, PartialState):  # out of time proving it: the next invocation goes on
                return Progress(state=keep.to_dict(), bytes_done=keep.size, bytes_sent=0)
            streamed = self._write_partial(session, partial, source, size, start=keep, deadline=deadline)
            if streamed.size < size:
                return _paused(session, partial, streamed)
            if same_size:
                there = there or self._existing_sha1(session, rel, final, existing, ledger, deadline)
                if there == streamed.sha1:
                    remove_quietly(session, partial)
                    ledger.remember(rel, LedgerEntry(size, int(existing.st_mtime or 0), streamed.sha1))
                    return PutResult(rel, size, streamed.sha1, "unchanged")
            if self.hashes:
                served = remote_sha1(session, self.partner.hashing, [partial], size)[partial]
                if served != streamed.sha1:
                    raise TransientError(
                        f"{self.name}: {partial} has SHA-1 {served} on the server, sent {streamed.sha1}"
                    )
            try:
                publish(session, partial, final, posix_rename=self.partner.posix_rename, replace=existing is not None)
            except PermanentError:
                remove_quietly(session, partial)
                raise
            published = attrs_of(session, final)
            mtime = int(published.st_mtime or 0) if published is not None else 0
            ledger.remember(rel, LedgerEntry(size, mtime, streamed.sha1))
        log.info("sftp file published", remote_path=final, size=size, sha1=streamed.sha1, replaced=existing is not None)
        return PutResult(rel, size, streamed.sha1, "new_version" if existing is not None else "uploaded")

    def stat(self, path: str) -> RemoteFile | None:
        rel = normalize_path(path)
        full = self.remote_path(rel)
        with self.pool.session() as session:
            attrs = attrs_of(session, full)
            if not is_file(attrs):
                return None
            size = int(attrs.st_size or 0)
            digest = remote_sha1(session, self.partner.hashing, [full], size)[full] if self.hashes else None
        return RemoteFile(rel, size, digest, mtime=int(attrs.st_mtime or 0))

    def list(self, prefix: str = "", *, hashes: bool = True) -> Iterator[RemoteFile]:
        rel = normalize_path(prefix)
        with self.pool.session() as session:
            top = attrs_of(session, self.remote_path(rel))
            files = sorted(walk(session, self.remote_path(rel), rel)) if is_folder(top) else []
            digests: dict[str, str] = {}
            if hashes and self.hashes and files:  # the server reads every byte: only when asked
                files, digests = self._hashed(session, files)
        for path, size, mtime in files:
            yield RemoteFile(path, size, digests.get(self.remote_path(path)), mtime=mtime)

    def list_folders(self, prefix: str = "") -> builtins.list[str]:
        with self.pool.session() as session:
            return subfolders(session, self.remote_path(normalize_path(prefix)))

    def delete(self, path: str) -> None:
        full = self.remote_path(normalize_path(path))
        with self.pool.session() as session:
            remove_if_there(session, full)

    def delete_folder(self, path: str, *, recursive: bool = True) -> bool:
        full = self.remote_path(folder_path(path))
        with self.pool.session() as session:
            return remove_tree(session, self.partner_name, full, recursive=recursive)

    def move(self, path: str, to: str) -> bool:
        """Rename the file ``path`` to ``to`` on the server (parents created, a file at ``to``
        replaced as ``put`` replaces); False when there is no file at ``path``."""
        src, dst = self.remote_path(normalize_path(path)), self.remote_path(normalize_path(to))
        with self.pool.session() as session:
            attrs = attrs_of(session, src)
            if not is_file(attrs):
                return False
            mkdirs(session, posixpath.dirname(dst))
            publish(session, src, dst, posix_rename=self.partner.posix_rename, replace=True)
        return True

    def mkdirs(self, path: str) -> None:
        full = self.remote_path(normalize_path(path))
        with self.pool.session() as session:
            mkdirs(session, full)

    def open(self, path: str, start: int = 0) -> BinaryIO:
        """The file's bytes from ``start`` as a stream (READ requests pipelined); close it to free the session."""
        full = self.remote_path(normalize_path(path))
        session = self.pool.acquire()
        try:
            reader = PipelinedReader(
                session, full, on_close=lambda healthy: self.pool.release(session, healthy), start=start
            )
        except BaseException:
            self.pool.release(session, False)
            raise
        return reader  # type: ignore[return-value]

    # ---- steps -----------------------------------------------------------------------------

    def _refuse_partial_name(self, rel: str) -> None:
        """RejectedInput for a name ending with the partial suffix: it is another file's upload
        in progress to us, so a put of that file would take it over as a leftover and delete it."""
        suffix = self.partner.partial_suffix
        if posixpath.basename(rel).endswith(suffix):
            raise RejectedInput(
                f"{self.name}: cannot deliver {rel!r}: its name ends with {suffix!r}, the suffix of files still "
                f"being written there (destinations.sftp.{self.partner_name}.partial_suffix); expected a name "
                f"not ending with {suffix!r} (rename the file, or agree another partial_suffix with the partner)"
            )

    def _write_partial(
        self,
        session: SftpSession,
        partial: str,
        source: ByteStream,
        size: int,
        *,
        start: Keep = RESTART,
        deadline: float | None = None,
    ) -> Streamed:
        """Bytes [start.offset, size) of ``source`` into ``partial`` (a fresh, exclusive one when
        the offset is 0; the source's first bytes must hash as ``start`` says) until ``deadline``;
        returns what the file then holds. A source that differs from the resumed prefix drops
        the partial (StaleResume: the retry starts over)."""
        dropped = False  # the resumed prefix did not match the source: the partial goes
        fresh = start.offset == 0
        handle = claim_partial(session, partial) if fresh else open_for_write(session, partial, create=False)
        extra = []
        if self.partner.connections_per_file > 1 and size >= PARALLEL_MIN_BYTES:
            extra = self.pool.acquire_extra(self.partner.connections_per_file - 1)
        sessions, handles = [session], [handle]
        healthy = False
        try:
            for helper in extra:
                handles.append(open_for_write(helper, partial, create=False))
                sessions.append(helper)
            feeder = _started_feeder(source, size, f"{self.name}: {partial}", start, deadline)
            try:
                streamed = stream_to_handles(sessions, handles, partial, feeder)
            except StaleResume:
                dropped = True
                raise
            finally:
                feeder.abort()
            for helper_session, helper_handle in zip(sessions, handles, strict=True):
                close_handle(helper_session, helper_handle, partial)
            handles = []
            healthy = True
        finally:
            for helper_session, helper_handle in zip(sessions, handles, strict=False):
                if helper_session.alive():
                    with contextlib.suppress(Exception):  # already failing: the first error matters
                        close_handle(helper_session, helper_handle, partial)
            for helper in extra:
                self.pool.release(helper, healthy)
            if not healthy and session.alive() and (fresh or dropped):
                remove_quietly(session, partial)  # a resumed one stays: its checkpoint still holds
        written = attrs_of(session, partial)
        if written is None or written.st_size != streamed.size:
            got = None if written is None else written.st_size
            raise TransientError(f"{self.name}: {partial} has {got} bytes on the server after writing {streamed.size}")
        return streamed

    def _hashed(self, session: SftpSession, files: Listed) -> tuple[Listed, dict[str, str]]:
        """The listed ``files`` the server hashed, with {full path: SHA-1}; those removed since the
        listing (a partner picking its files up) are left out, as a listing a moment later would."""
        while True:
            full = [self.remote_path(path) for path, _, _ in files]
            try:
                return files, remote_sha1(session, self.partner.hashing, full, sum(size for _, size, _ in files))
            except TransientError:
                there = [f for f, p in zip(files, full, strict=True) if is_file(attrs_of(session, p))]
                if len(there) == len(files):
                    raise  # not a vanished file
                files = there  # fewer each time: the loop ends

    def _existing_sha1(
        self, session: SftpSession, rel: str, final: str, attrs: Any, ledger: DeliveryLedger, deadline: float | None
    ) -> str | None:
        """The SHA-1 of the file already at ``final``: server hash, else the ledger, else download
        — within ``deadline``: None past it (the file is then written, or replaced, unproven:
        a download as long as the budget would otherwise end every invocation before it wrote)."""
        if self.hashes:
            return remote_sha1(session, self.partner.hashing, [final], int(attrs.st_size or 0))[final]
        entry = ledger.recall(rel)
        if entry is not None and entry.size == attrs.st_size and entry.mtime == int(attrs.st_mtime or 0):
            return entry.sha1
        log.info("hashing the existing remote file by download (no server hash, no ledger entry)", remote_path=final)
        digest = read_sha1(session, final, deadline)
        if digest is None:
            log.warning("out of time hashing the existing remote file; it is replaced unproven", remote_path=final)
        return digest


def _paused(session: Any, partial: str, streamed: Streamed) -> Progress:
    """Out of time with ``streamed`` written: the partial file stays, and its state (size, SHA-1,
    mtime, block hashes) lets the next invocation prove it and go on."""
    log.info("out of time; partial file kept for the next invocation", remote_path=partial, **_sizes(streamed))
    now = attrs_of(session, partial)
    mtime = int(now.st_mtime or 0) if now is not None else -1
    done = PartialState(partial, streamed.size, streamed.sha1, mtime, streamed.blocks).to_dict()
    return Progress(state=done, bytes_done=streamed.size, bytes_sent=streamed.sent)


def _started_feeder(source: ByteStream, size: int, what: str, start: Keep, deadline: float | None) -> ChunkFeeder:
    """A reader thread feeding ``source`` from ``start.offset`` (its prefix checked against
    ``start``'s hashes) until ``deadline``."""
    feeder = ChunkFeeder(
        source,
        size,
        what=what,
        skip_to=start.offset,
        prefix_sha1=start.sha1,
        prefix_blocks=start.blocks,
        deadline=deadline,
    )
    feeder.start()
    return feeder


def _sizes(streamed: Streamed) -> dict[str, int]:
    return {"bytes_done": streamed.size, "bytes_sent": streamed.sent}


def from_config(destination: DestinationId, config: Config) -> SftpDestination:
    """The partner ``destination.name`` as configured, over the process's pool (the factory's
    entry point for kind ``sftp``). ConfigError when the partner is not configured."""
    partner = config.sftp_partner(destination.name)
    return SftpDestination(destination.name, partner, pool=pool_for(destination.name, partner))
