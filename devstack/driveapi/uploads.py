"""Uploads: ``uploadType=media``, ``multipart`` (metadata + content in one request) and
``resumable`` (a session URI taking chunks with ``Content-Range``, resumable after a lost
connection: ``Content-Range: bytes */TOTAL`` answers 308 with ``Range: bytes=0-N``).

As on Drive, a chunk that is not the last is kept only up to a multiple of 256 KiB (the 308's
``Range`` says what was kept); a chunk that starts before the kept end has its known bytes
skipped; one that starts after it is a 400. A file appears (or its content changes) only when
the last byte arrives: nothing partial is ever listed.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .store import DriveApiError, Hashes, Store, checked_properties

CHUNK_GRANULARITY = 256 * 1024
_RANGE = re.compile(r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)\Z")


@dataclass
class Session:
    id: str
    principal: str
    metadata: dict[str, Any]
    all_drives: bool
    fields: str | None
    staged: Path
    file_id: str | None = None  # an update of this file's content (PATCH), else a new file
    total: int | None = None
    received: int = 0
    hashes: Hashes = field(default_factory=Hashes)
    done_id: str | None = None  # the file, once complete


class Uploads:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.sessions: dict[str, Session] = {}

    def start(
        self,
        principal: str,
        metadata: dict[str, Any],
        *,
        all_drives: bool,
        fields: str | None,
        file_id: str | None,
        declared: str | None,
    ) -> Session:
        if file_id is None:  # fail now, not after the upload, when the parent is wrong
            self.store.parent_for(metadata, principal, all_drives=all_drives)
        for key in ("appProperties", "properties"):  # and when a property is over Drive's limits
            if isinstance(metadata.get(key), dict):
                checked_properties(key, {k: str(v) for k, v in metadata[key].items() if v is not None})
        sid = secrets.token_urlsafe(18)
        session = Session(sid, principal, metadata, all_drives, fields, self.store.blobs / f"_upload-{sid}", file_id)
        if declared is not None:
            session.total = int(declared)
        session.staged.write_bytes(b"")
        self.sessions[sid] = session
        return session

    def get(self, sid: str) -> Session:
        session = self.sessions.get(sid)
        if session is None:
            raise DriveApiError(404, "notFound", "Upload session not found (expired, cancelled or never created).")
        return session

    def cancel(self, sid: str) -> None:
        session = self.get(sid)
        del self.sessions[sid]
        session.staged.unlink(missing_ok=True)

    def expire(self, sid: str) -> None:
        """Forget session ``sid`` as Drive does a week after it opened (an ``expire`` fault)."""
        session = self.sessions.pop(sid, None)
        if session is not None:
            session.staged.unlink(missing_ok=True)

    def put(
        self, session: Session, content_range: str | None, body: bytes, *, keep: int | None = None
    ) -> dict[str, Any] | None:
        """Store a chunk (only its first ``keep`` bytes with a keep_part fault); the file record
        when the upload is complete, else None (→ 308)."""
        if session.done_id is not None:
            return self.store.records.get(session.done_id)
        if content_range is None:
            start, end, total = 0, len(body) - 1, len(body)
        else:
            found = _RANGE.match(content_range.strip())
            if found is None:
                raise DriveApiError(400, "badContent", f"Failed to parse Content-Range header: {content_range!r}")
            total = None if found.group(3) == "*" else int(found.group(3))
            if found.group(1) is None:  # status query or an empty final chunk
                if body:
                    raise DriveApiError(400, "badContent", "Content-Range 'bytes */N' must come with an empty body.")
                start, end = session.received, session.received - 1
            else:
                start, end = int(found.group(1)), int(found.group(2))
                if end - start + 1 != len(body):
                    raise DriveApiError(
                        400,
                        "badContent",
                        f"Content-Range {content_range!r} says {end - start + 1} bytes, body has {len(body)}.",
                    )
        if total is not None:
            if session.total is not None and session.total != total:
                raise DriveApiError(400, "badContent", f"Total size {total} differs from the declared {session.total}.")
            session.total = total
        if start > session.received:
            raise DriveApiError(
                400,
                "badContent",
                f"Invalid request. According to the Content-Range header, the upload offset is "
                f"{start} byte(s), which exceeds already uploaded size of {session.received} byte(s).",
            )
        new = body[session.received - start :] if start < session.received else body
        if keep is not None:
            new = new[:keep]
        final = session.total is not None and session.received + len(new) >= session.total
        if not final:
            keep = ((session.received + len(new)) // CHUNK_GRANULARITY) * CHUNK_GRANULARITY - session.received
            new = new[: max(0, keep)]
        if session.total is not None and session.received + len(new) > session.total:
            raise DriveApiError(400, "badContent", f"More bytes than the declared total {session.total}.")
        if new:
            with open(session.staged, "ab") as staged:
                staged.write(new)
            session.hashes.update(new)
            session.received += len(new)
        if session.total is not None and session.received == session.total:
            return self._finish(session)
        return None

    def _finish(self, session: Session) -> dict[str, Any]:
        assert session.total is not None
        if session.file_id is not None:
            record = self.store.get(session.file_id, session.principal, all_drives=session.all_drives)
            self.store.update(record, session.metadata, None, None, session.principal, all_drives=session.all_drives)
        else:
            record = self.store.create(session.metadata, session.principal, all_drives=session.all_drives)
        self.store.set_content(record, session.staged, session.total, session.hashes)
        session.done_id = record["id"]
        return record

    def whole(
        self, principal: str, metadata: dict[str, Any], content: bytes, *, all_drives: bool, file_id: str | None
    ) -> dict[str, Any]:
        """A one-request upload (``media`` or ``multipart``)."""
        session = self.start(
            principal, metadata, all_drives=all_drives, fields=None, file_id=file_id, declared=str(len(content))
        )
        try:
            record = self.put(session, None, content)
            assert record is not None
            return record
        finally:
            self.sessions.pop(session.id, None)


def split_multipart(content_type: str, body: bytes) -> tuple[dict[str, Any], bytes]:
    """(metadata, content) of a ``multipart/related`` upload body."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    parts = list(message.iter_parts()) if message.is_multipart() else []
    if len(parts) != 2:
        raise DriveApiError(400, "badContent", f"multipart upload needs 2 parts (metadata, media), found {len(parts)}")
    raw_meta = parts[0].get_payload(decode=True) or b"{}"
    content = parts[1].get_payload(decode=True) or b""
    try:
        metadata = json.loads(raw_meta or b"{}")
    except ValueError:
        raise DriveApiError(400, "parseError", "Metadata part is not JSON.") from None
    return metadata, content
