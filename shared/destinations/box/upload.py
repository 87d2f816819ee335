"""Sending bytes to Box: preflight, one-shot multipart uploads, and upload sessions.

Upload sessions (files at or above the chunked threshold) are read from the source one part
at a time, hashed (per-part SHA-1 ``Digest`` and the whole-file SHA-1 for the commit) and
sent by a pool of ``parallel_parts`` threads. A semaphore taken before a part is read and
released when Box has it keeps at most ``parallel_parts`` parts in memory, however fast the
source is. The commit is polled while Box answers 202 with ``Retry-After``.

Every failure that might have happened after Box stored the data (a 5xx, a dropped
connection) is resolved by looking at what Box has, never by sending a second copy:
re-sent parts are matched by offset and SHA-1 in the session's part list, new versions
carry ``If-Match`` so a repeated request cannot add a second version.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from shared.destinations.base import ByteStream
from shared.destinations.box.folders import chain_of
from shared.destinations.box.http import BoxApiError, BoxHttp
from shared.errors import PermanentError, TransientError
from shared.log import get_logger, in_context
from shared.retry import parse_retry_after, retry_call

log = get_logger(__name__)
# What Box answers a session's endpoints once the session is gone: 404 (committed or aborted,
# e.g. by the same delivery running twice at once), 410 session_expired (after 7 days).
SESSION_GONE = (404, 410)
# A commit may stay 202 for as long as Box assembles the parts; give it a few minutes.
COMMIT_ATTEMPTS = 60
COMMIT_DEADLINE_S = 300.0
READ_BLOCK = 1024 * 1024


@dataclass(frozen=True)
class BoxFile:
    """A file as Box describes it (the fields offsite uses)."""

    id: str
    name: str
    sha1: str | None = None
    size: int | None = None
    etag: str | None = None
    folders: tuple[tuple[str, str], ...] | None = None  # (id, name) from All Files down to its folder

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> BoxFile:
        size = entry.get("size")
        etag = entry.get("etag")
        return cls(
            id=str(entry["id"]),
            name=str(entry.get("name", "")),
            sha1=entry.get("sha1"),
            size=int(size) if size is not None else None,
            etag=str(etag) if etag is not None else None,
            folders=chain_of(entry),
        )


class CommitPending(TransientError):
    """Box answered 202 to the commit: the parts are still being processed."""


class ShortSource(PermanentError):
    """The source ended before the announced size."""


def read_exactly(source: ByteStream, size: int, what: str) -> bytes:
    """``size`` bytes from ``source``; ShortSource when it ends early."""
    first = source.read(size) if size else b""
    if len(first) == size:
        return first
    chunks, got = [first], len(first)
    while got < size:
        chunk = source.read(min(size - got, READ_BLOCK * 8))
        if not chunk:
            raise ShortSource(f"{what}: the source ended after {got} bytes, {size} were expected")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def ensure_drained(source: ByteStream, what: str, size: int) -> None:
    """The source must end exactly at ``size`` (a longer object means the size was wrong)."""
    if source.read(1):
        raise PermanentError(f"{what}: the source has more than the announced {size} bytes")


def preflight(http: BoxHttp, folder_id: str, name: str, size: int) -> dict[str, Any] | None:
    """``OPTIONS /files/content``: None when the name is free, else the conflicting item."""
    what = f"preflight check for {name!r}"
    body = {"name": name, "size": size, "parent": {"id": folder_id}}
    try:
        http.call("OPTIONS", f"{http.api}/files/content", what=what, json=body).close()
    except BoxApiError as exc:
        if exc.http_status == 409 and exc.code == "item_name_in_use":
            conflicts = exc.conflicts()
            if conflicts:
                return conflicts[0]
        raise
    return None


def file_info(http: BoxHttp, file_id: str) -> BoxFile:
    response = http.call(
        "GET",
        f"{http.api}/files/{file_id}",
        what=f"get Box file {file_id}",
        params={"fields": "id,name,sha1,size,etag,path_collection"},
    )
    return BoxFile.from_entry(response.json())


def upload_whole(
    http: BoxHttp,
    *,
    folder_id: str,
    name: str,
    data: bytes,
    sha1: str,
    file_id: str | None = None,
    if_match: str | None = None,
) -> BoxFile:
    """One multipart upload (new file, or a new version of ``file_id``), checked by Box against ``sha1``."""
    if file_id is None:
        url, attributes = f"{http.upload}/files/content", {"name": name, "parent": {"id": folder_id}}
    else:
        url, attributes = f"{http.upload}/files/{file_id}/content", {"name": name}
    headers = {"Content-MD5": sha1}
    if if_match is not None:
        headers["If-Match"] = if_match
    # Box wants the attributes part before the file part.
    files = [
        ("attributes", (None, json.dumps(attributes), "application/json")),
        ("file", (name, data, "application/octet-stream")),
    ]
    response = http.call("POST", url, what=f"upload {name!r} to Box", files=files, headers=headers)
    return BoxFile.from_entry(response.json()["entries"][0])


class StaleSession(TransientError):
    """A resumed upload session holds parts with other bytes than the source: it is aborted and
    the retry starts a new one."""


class SessionGone(StaleSession):
    """Box no longer has the upload session (``SESSION_GONE``): the retry finds the file a
    concurrent run committed (same SHA-1), or opens a new session."""


@dataclass(frozen=True)
class SentParts:
    """What ``send_parts`` achieved: the parts Box holds, the whole-file SHA-1 once every part
    is there (None when it stopped at its deadline), and the bytes sent by this call."""

    parts: list[dict[str, Any]]
    sha1: str | None
    sent: int

    @property
    def stored_bytes(self) -> int:
        return sum(int(p.get("size", 0)) for p in self.parts)


def _same_part(part: dict[str, Any], data: bytes) -> bool:
    return int(part.get("size", -1)) == len(data) and part.get("sha1") == hashlib.sha1(data).hexdigest()


def _done(part: dict[str, Any]) -> Future[dict[str, Any]]:
    future: Future[dict[str, Any]] = Future()
    future.set_result(part)
    return future


class UploadSession:
    """One Box upload session: create, send parts in parallel, commit (polling 202), or abort."""

    def __init__(self, http: BoxHttp, *, name: str, size: int, parallel: int) -> None:
        self.http = http
        self.name = name
        self.size = size
        self.parallel = max(1, parallel)
        self.info: dict[str, Any] = {}

    @property
    def part_size(self) -> int:
        return int(self.info["part_size"])

    def _endpoint(self, key: str) -> str:
        endpoints = self.info.get("session_endpoints") or {}
        base = f"{self.http.upload}/files/upload_sessions/{self.info['id']}"
        defaults = {"upload_part": base, "commit": base + "/commit", "abort": base, "list_parts": base + "/parts"}
        return str(endpoints.get(key) or defaults[key])

    def create(self, *, folder_id: str | None = None, file_id: str | None = None) -> None:
        """A session for a new file in ``folder_id`` or a new version of ``file_id``."""
        if file_id is None:
            url, body = (
                f"{self.http.upload}/files/upload_sessions",
                {"folder_id": folder_id, "file_size": self.size, "file_name": self.name},
            )
        else:
            url, body = (
                f"{self.http.upload}/files/{file_id}/upload_sessions",
                {"file_size": self.size, "file_name": self.name},
            )
        self.info = self.http.call("POST", url, what=f"create upload session for {self.name!r}", json=body).json()

    def send_parts(
        self, source: ByteStream, *, stored: list[dict[str, Any]] | None = None, deadline: float | None = None
    ) -> SentParts:
        """Read the source, upload every part; returns the parts and the whole-file SHA-1 hex.

        Resuming: a part already ``stored`` in the session with the same size and SHA-1 is read
        (the whole file's digest needs it) but not sent again. Past ``deadline`` (after at least
        one part was sent) no new part is read: ``sha1`` is then None and the caller checkpoints.
        """
        known = {int(p["offset"]): p for p in stored or ()}
        whole = hashlib.sha1()
        sent = 0
        slots = threading.BoundedSemaphore(self.parallel)
        futures: list[Future[dict[str, Any]]] = []
        failed = threading.Event()

        def send(held: list[bytes], offset: int) -> dict[str, Any]:
            try:
                return self._send_part(held.pop(), offset)
            except BaseException:
                failed.set()
                raise
            finally:
                slots.release()  # the part's bytes are gone: the next one may be read

        with ThreadPoolExecutor(self.parallel, thread_name_prefix="box-part") as pool:
            try:
                offset = 0
                while offset < self.size and not failed.is_set():
                    if sent and deadline is not None and time.monotonic() > deadline and offset not in known:
                        break  # out of time: the parts in flight finish, the caller checkpoints
                    data = self._read_part(source, offset, slots)
                    length = len(data)
                    whole.update(data)
                    part = known.get(offset)
                    if part is not None:
                        slots.release()
                        if not _same_part(part, data):
                            raise StaleSession(f"upload {self.name!r}: the session holds other bytes at {offset}")
                        futures.append(_done(part))
                        offset += length
                        continue
                    sent += length
                    # Handed over in a list the task empties, so no queue entry keeps the bytes alive.
                    futures.append(pool.submit(in_context(send), [data], offset))
                    del data
                    offset += length
            finally:
                # Let running parts finish (or fail) before the pool is torn down.
                for future in futures:
                    future.exception()
        parts = [f.result() for f in futures]  # raises the first part's error
        if offset < self.size:
            return SentParts(parts, None, sent)
        ensure_drained(source, f"upload {self.name!r}", self.size)
        return SentParts(parts, whole.hexdigest(), sent)

    def _read_part(self, source: ByteStream, offset: int, slots: threading.BoundedSemaphore) -> bytes:
        """The part at ``offset``, read once fewer than ``parallel`` parts are read and not yet stored."""
        slots.acquire()
        try:
            return read_exactly(source, min(self.part_size, self.size - offset), f"upload {self.name!r}")
        except BaseException:
            slots.release()
            raise

    def resume(
        self, state: dict[str, Any] | None, *, folder_id: str, file_id: str | None
    ) -> list[dict[str, Any]] | None:
        """The parts of the checkpointed session (``state``, the put's resume state), if it is for
        this very upload (folder and file) and still alive."""
        if not state or not isinstance(state.get("session"), dict):
            return None
        same_target = state.get("folder_id") == folder_id and state.get("file_id") == file_id
        if not same_target or int(state["session"].get("total_parts", -1)) < 0:
            return None
        stored = self.restore(state["session"])
        if stored is None:
            log.info("checkpointed upload session is gone; starting a new one", name=self.name)
        return stored

    def restore(self, info: dict[str, Any]) -> list[dict[str, Any]] | None:
        """Take over a session an earlier invocation created; its stored parts, or None when
        Box no longer has it (expired after 7 days, committed, aborted): start a new one."""
        self.info = dict(info)
        try:
            return self.list_parts()
        except BoxApiError as exc:
            if exc.http_status in SESSION_GONE:
                self.info = {}
                return None
            raise

    def _send_part(self, data: bytes, offset: int) -> dict[str, Any]:
        digest = hashlib.sha1(data).digest()
        sha1_hex = digest.hex()
        end = offset + len(data) - 1
        headers = {
            "Content-Type": "application/octet-stream",
            "Digest": "sha=" + base64.b64encode(digest).decode(),
            "Content-Range": f"bytes {offset}-{end}/{self.size}",
        }
        what = f"upload part {offset}-{end} of {self.name!r}"

        def once() -> dict[str, Any]:
            try:
                response = self.http.send("PUT", self._endpoint("upload_part"), what=what, data=data, headers=headers)
            except BoxApiError as exc:
                # An earlier attempt may have been stored although we never saw the answer.
                if exc.http_status in (409, 416):
                    known = self._stored_part(offset)
                    if known is not None and known.get("sha1") == sha1_hex and int(known.get("size", -1)) == len(data):
                        return known
                raise
            part: dict[str, Any] = response.json()["part"]
            if (
                part.get("sha1") != sha1_hex
                or int(part.get("size", -1)) != len(data)
                or int(part.get("offset", -1)) != offset
            ):
                raise TransientError(f"{what}: Box recorded a different part ({part}); sending it again")
            return part

        try:
            return retry_call(once, what, attempts=10, max_wait_s=20.0)
        except BoxApiError as exc:
            if exc.http_status in SESSION_GONE:
                raise SessionGone(f"{exc} (the upload session is gone; the delivery will be retried)") from None
            raise

    def _stored_part(self, offset: int) -> dict[str, Any] | None:
        for part in self.list_parts():
            if int(part.get("offset", -1)) == offset:
                return part
        return None

    def list_parts(self) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 1000, "offset": 0}
        while True:
            data = self.http.call(
                "GET", self._endpoint("list_parts"), what=f"list parts of {self.name!r}", params=params
            ).json()
            entries = data.get("entries") or []
            parts.extend(entries)
            if not entries or len(parts) >= int(data.get("total_count", len(parts))):
                return parts
            params["offset"] = len(parts)

    def commit(self, parts: list[dict[str, Any]], sha1_hex: str, *, if_match: str | None = None) -> BoxFile:
        """Commit with the whole-file digest; 202 means "not yet": wait Retry-After and ask again."""
        headers = {"Digest": "sha=" + base64.b64encode(bytes.fromhex(sha1_hex)).decode()}
        if if_match is not None:
            headers["If-Match"] = if_match
        body = {"parts": sorted(parts, key=lambda p: int(p["offset"]))}
        what = f"commit upload session of {self.name!r}"

        def once() -> BoxFile:
            response = self.http.send("POST", self._endpoint("commit"), what=what, json=body, headers=headers)
            if response.status_code == 202:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                response.close()
                raise CommitPending(f"{what}: Box is still processing the parts", retry_after=retry_after or 1.0)
            return BoxFile.from_entry(response.json()["entries"][0])

        return retry_call(once, what, attempts=COMMIT_ATTEMPTS, max_wait_s=20.0, deadline_s=COMMIT_DEADLINE_S)

    def abort(self) -> None:
        """Best effort: the session's parts are dropped (Box would expire them anyway)."""
        if not self.info.get("id"):
            return
        try:
            self.http.send("DELETE", self._endpoint("abort"), what=f"abort upload session of {self.name!r}").close()
        except Exception as exc:  # noqa: BLE001 - an abandoned session expires by itself
            log.warning("could not abort upload session", name=self.name, error=str(exc))
