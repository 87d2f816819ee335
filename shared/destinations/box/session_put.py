"""A file of at least ``chunked_threshold_bytes`` into Box through one upload session: the
session opened (a new file, or a new version of the one there), its parts sent in parallel
(:class:`shared.destinations.box.upload.UploadSession`; a paused upload keeps its session and
continues it later), committed against the whole file's SHA-1, and what a refused commit means
(an earlier attempt of ours or a concurrent upload made the file; the session is gone; the file
changed meanwhile). :class:`~shared.destinations.box.destination.BoxDestination` calls
:func:`put_session`; it keeps the folder cache and the HTTP pool this uses."""

from __future__ import annotations

from typing import Any, Protocol

from shared.config import BoxDestination as BoxSettings
from shared.destinations.base import ByteStream, Progress, PutResult, PutStatus
from shared.destinations.box.folders import BoxFolders
from shared.destinations.box.http import BoxApiError, BoxHttp, write_journal
from shared.destinations.box.upload import SESSION_GONE, BoxFile, SessionGone, StaleSession, UploadSession
from shared.errors import TransientError
from shared.log import get_logger

log = get_logger(__name__)
Parts = list[dict[str, Any]]  # Box's upload session parts


class BoxHost(Protocol):
    """What a session put uses of the Box destination: its settings, HTTP pool and folder cache,
    how it reads a name conflict, and the check that a new file landed in its folder."""

    settings: BoxSettings
    http: BoxHttp
    folders: BoxFolders

    def describe_conflict(self, conflict: dict[str, Any] | None) -> BoxFile | None: ...

    def ensure_placed(self, stored: BoxFile, path: str) -> None: ...


def put_session(
    dest: BoxHost,
    folder_id: str,
    path: str,
    name: str,
    source: ByteStream,
    size: int,
    existing: BoxFile | None,
    resume: dict[str, Any] | None = None,
    deadline: float | None = None,
) -> PutResult | Progress:
    """Put ``source`` (``size`` bytes) as ``name`` in folder ``folder_id`` through an upload
    session: the one ``resume`` names (the parts Box holds are not sent again), else a new one.
    :class:`Progress` when ``deadline`` came first (the session is kept), else the PutResult."""
    session = UploadSession(dest.http, name=name, size=size, parallel=dest.settings.parallel_parts)
    stored: Parts | None = session.resume(resume, folder_id=folder_id, file_id=existing.id if existing else None)
    if stored is None:
        existing = _open_session(dest, session, folder_id, existing)
        stored = []
    try:
        sent = session.send_parts(source, stored=stored, deadline=deadline)
    except SessionGone:
        raise  # nothing left to abort: the retry finds the file or opens a new session
    except StaleSession:
        session.abort()  # unprovable: the retry finds it gone and starts a new session
        raise
    except BaseException:
        if deadline is None:
            session.abort()  # a resumable upload keeps its session: the retry continues it
        raise
    if sent.sha1 is None:
        state = {"session": session.info, "folder_id": folder_id, "file_id": existing.id if existing else None}
        log.info("box upload paused at its deadline", path=path, stored=sent.stored_bytes, sent=sent.sent)
        return Progress(state=state, bytes_done=sent.stored_bytes, bytes_sent=sent.sent)
    parts, digest = sent.parts, sent.sha1
    if existing is not None and existing.sha1 == digest:
        session.abort()  # same bytes: no new version
        return PutResult(path, size, digest, "unchanged", existing.id)
    try:
        with write_journal() as journal:
            stored_file = session.commit(parts, digest, if_match=existing.etag if existing else None)
    except BoxApiError as exc:
        ours = journal.maybe_stored  # an earlier commit attempt may have made the file
        return _after_failed_commit(dest, exc, session, folder_id, path, name, size, digest, existing, ours)
    check_stored(stored_file, digest, path)
    if existing is None:
        dest.ensure_placed(stored_file, path)
    log.info("box upload session committed", path=path, size=size, parts=len(parts))
    return PutResult(path, size, digest, stored_status(existing), stored_file.id)


def _open_session(dest: BoxHost, session: UploadSession, folder_id: str, existing: BoxFile | None) -> BoxFile | None:
    """Create the session (a new file, or a new version of ``existing``); returns the file
    the session will replace, which may have changed meanwhile."""
    try:
        session.create(folder_id=folder_id) if existing is None else session.create(file_id=existing.id)
    except BoxApiError as exc:
        if exc.http_status == 404 and existing is not None:
            existing = None  # the file was deleted meanwhile: upload it as a new one
            session.create(folder_id=folder_id)
        elif exc.http_status == 409 and existing is None and exc.conflicts():
            existing = dest.describe_conflict(exc.conflicts()[0])  # a concurrent upload got there first
            assert existing is not None
            session.create(file_id=existing.id)
        else:
            raise
    return existing


def _after_failed_commit(
    dest: BoxHost,
    exc: BoxApiError,
    session: UploadSession,
    folder_id: str,
    path: str,
    name: str,
    size: int,
    digest: str,
    existing: BoxFile | None,
    maybe_ours: bool,
) -> PutResult:
    """A commit refused: maybe an earlier attempt of ours (``maybe_ours``: one went unanswered)
    or a concurrent upload already made the file."""
    entry = dest.folders.find(folder_id, name)
    current = BoxFile.from_entry(entry) if entry is not None and entry.get("type") == "file" else None
    if current is not None and current.sha1 == digest:
        session.abort()
        status: PutStatus = stored_status(existing) if exc.http_status == 404 or maybe_ours else "unchanged"
        return PutResult(path, size, digest, status, current.id)
    session.abort()
    if exc.http_status in SESSION_GONE:
        raise SessionGone(f"box: {path!r}: {exc} (the upload session is gone; the delivery will be retried)") from None
    if exc.http_status in (409, 412):
        raise TransientError(
            f"box: {path!r} changed while its upload session ran ({exc}); the delivery will be retried"
        ) from None
    raise exc


def stored_status(existing: BoxFile | None) -> PutStatus:
    """What a put that stored bytes made: a new version of ``existing``, or a new file."""
    return "new_version" if existing is not None else "uploaded"


def check_stored(stored: BoxFile, digest: str, path: str) -> None:
    """Box's SHA-1 of what it stored must be ours (a TransientError retries the put)."""
    if stored.sha1 is not None and stored.sha1 != digest:
        raise TransientError(f"box: {path!r} stored with SHA-1 {stored.sha1}, expected {digest}")
