"""The Box destination: the Destination protocol on Box folders under a root folder id.

Paths are relative to ``destinations.box.root_folder_id``. ``put`` never makes a duplicate:
the name already there with the same SHA-1 → ``unchanged`` (without reading the source when
the caller knows the SHA-1); different bytes → a new version of that file (Box keeps the
old one in its version history). Files below ``chunked_threshold_bytes`` go in one multipart
upload after a preflight check, the rest through an upload session with parallel parts.
"""

from __future__ import annotations

import builtins
import hashlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar, Unpack

from shared.config import BoxDestination as BoxSettings
from shared.config import Config
from shared.destinations.base import (
    Abilities,
    ByteStream,
    Progress,
    PutResult,
    PutStatus,
    PutViaResumable,
    RemoteFile,
    ResumeOptions,
    folder_path,
    normalize_path,
    range_header,
    skipped_to,
)
from shared.destinations.box.folders import BoxFolders, StaleFolder
from shared.destinations.box.http import BoxApiError, BoxHttp, write_journal
from shared.destinations.box.session_put import check_stored, put_session, stored_status
from shared.destinations.box.upload import (
    BoxFile,
    ensure_drained,
    file_info,
    preflight,
    read_exactly,
    upload_whole,
)
from shared.errors import ConfigError, PermanentError, TransientError
from shared.ids import DestinationId
from shared.log import get_logger
from shared.per_process import per_process

if TYPE_CHECKING:
    import urllib3

log = get_logger(__name__)
T = TypeVar("T")


class BoxDestination(PutViaResumable):
    """Box as a Destination (``name == "box"``, SHA-1 on every file)."""

    name = "box"
    id = DestinationId("box")
    # Files appear when an upload (or a session's commit) completes; GCP/bigquery/... folder tree.
    abilities = Abilities(
        hashes=frozenset({"sha1"}), atomic_put=True, layout="gcp_tree", resumable=True, folds_case=True
    )

    def __init__(
        self, settings: BoxSettings, *, root_folder_id: str | None = None, http: BoxHttp | None = None
    ) -> None:
        self.settings = settings
        self.http = http or BoxHttp(settings)
        self.root_folder_id = root_folder_id or settings.root_folder_id
        self.folders = BoxFolders(self.http, self.root_folder_id)

    # ---- Destination -------------------------------------------------------------------

    def put_resumable(
        self, path: str, source: ByteStream, size: int, **options: Unpack[ResumeOptions]
    ) -> PutResult | Progress:
        """See :class:`shared.destinations.base.Resumable`: chunked uploads keep their upload
        session (Box keeps one 7 days) and the parts Box holds are never sent again; smaller
        files go in one request and never pause."""
        sha1, resume, deadline = options.get("sha1"), options.get("resume"), options.get("deadline")
        path = normalize_path(path)
        parent, _, name = path.rpartition("/")
        if not name:
            raise ValueError(f"path {path!r} names no file")
        folder_id, existing = self._prepare(parent, name, size)
        if existing is not None and sha1 is not None and existing.sha1 == sha1 and existing.size == size:
            return PutResult(path, size, sha1, "unchanged", existing.id)
        if size < self.settings.chunked_threshold_bytes:
            data = read_exactly(source, size, f"upload {path!r}")
            ensure_drained(source, f"upload {path!r}", size)
            try:
                return self._put_whole(folder_id, path, name, data, existing)
            except StaleFolder:  # a cached folder was renamed or moved in Box: once more, resolved afresh
                folder_id, existing = self._prepare(parent, name, size)
                return self._put_whole(folder_id, path, name, data, existing)
        return put_session(self, folder_id, path, name, source, size, existing, resume, deadline)

    def stat(self, path: str) -> RemoteFile | None:
        path = normalize_path(path)
        parent, _, name = path.rpartition("/")
        entry = self._entry(parent, name)
        if entry is None or entry.get("type") != "file":
            return None
        return _remote(path, entry)

    def list(self, prefix: str = "", *, hashes: bool = True) -> Iterator[RemoteFile]:
        prefix = normalize_path(prefix)

        def files() -> builtins.list[RemoteFile]:
            folder_id = self.folders.lookup(prefix, confirm=True)
            if folder_id is None:
                return []
            return [_remote(child, entry) for child, entry in self.folders.files_below(folder_id, prefix)]

        yield from sorted(self._with_fresh_cache(files), key=lambda f: f.path)

    def list_folders(self, prefix: str = "") -> builtins.list[str]:
        prefix = normalize_path(prefix)

        def names() -> builtins.list[str]:  # one items() walk of that folder only
            folder_id = self.folders.lookup(prefix, confirm=True)
            return [] if folder_id is None else self.folders.subfolders(folder_id, prefix)

        return sorted(self._with_fresh_cache(names))

    def delete(self, path: str) -> None:
        path = normalize_path(path)
        parent, _, name = path.rpartition("/")
        entry = self._entry(parent, name)
        if entry is None or entry.get("type") != "file":
            return
        try:
            self.http.call("DELETE", f"{self.http.api}/files/{entry['id']}", what=f"delete Box file {path!r}").close()
        except BoxApiError as exc:
            if exc.http_status != 404:
                raise

    def delete_folder(self, path: str, *, recursive: bool = True) -> bool:
        path = folder_path(path)
        folder_id = self._with_fresh_cache(lambda: self.folders.lookup(path, confirm=True, strict=True))
        if folder_id is None:
            return True
        params = {"recursive": "true" if recursive else "false"}
        try:
            url = f"{self.http.api}/folders/{folder_id}"
            self.http.call("DELETE", url, what=f"delete Box folder {path!r}", params=params).close()
        except BoxApiError as exc:
            if exc.http_status == 400 and exc.code == "folder_not_empty" and not recursive:
                return False
            if exc.http_status != 404:
                raise
        finally:
            self.folders.forget()  # cached ids of that folder and below are gone (or about to be)
        return True

    def mkdirs(self, path: str) -> None:
        path = normalize_path(path)
        self._with_fresh_cache(lambda: self.folders.ensure(path, confirm=True))

    def close(self) -> None:
        """Nothing to release: the HTTP pool, token and folder cache serve the whole process."""

    def location(self, path: str) -> str:
        return normalize_path(path)

    # ---- Readable ------------------------------------------------------------------------

    def open(self, path: str, start: int = 0) -> ByteStream:
        """The file's bytes from ``start`` as a stream (Box redirects to its download URL;
        requests follows, with the ``Range`` header). A file uploaded just before may not be
        ready: Box answers 202 + Retry-After, asked again."""
        found = self.stat(path)
        if found is None or found.remote_id is None:
            raise PermanentError(f"box: {normalize_path(path)}: no such file")
        url = f"{self.http.api}/files/{found.remote_id}/content"
        response = self.http.call(
            "GET", url, what=f"download {path!r}", headers=range_header(start), stream=True, expect=(200, 206)
        )
        body: urllib3.HTTPResponse = response.raw
        body.decode_content = True
        return skipped_to(body, start) if start and response.status_code == 200 else body

    # ---- operator helpers ----------------------------------------------------------------

    def entries(self, path: str = "") -> builtins.list[dict[str, Any]]:
        """The items of folder ``path`` (type, id, name, size, sha1); PermanentError if missing."""
        path = normalize_path(path)
        folder_id = self._with_fresh_cache(lambda: self.folders.lookup(path, confirm=True))
        if folder_id is None:
            raise PermanentError(f"box: no folder {path or '/'!r} under root folder {self.root_folder_id}")
        return list(self.folders.items(folder_id))

    # ---- internals -------------------------------------------------------------------------

    def _with_fresh_cache(self, fn: Callable[[], T]) -> T:
        """Run ``fn``; when a cached folder id turned out stale (404), forget the cache and run again."""
        try:
            return fn()
        except StaleFolder:
            return fn()
        except BoxApiError as exc:
            if exc.http_status != 404:
                raise
            self.folders.forget()
            return fn()

    def _entry(self, parent: str, name: str) -> dict[str, Any] | None:
        def find() -> dict[str, Any] | None:
            folder_id = self.folders.lookup(parent, confirm=True)
            return None if folder_id is None else self.folders.find(folder_id, name)

        return self._with_fresh_cache(find)

    def _prepare(self, parent: str, name: str, size: int) -> tuple[str, BoxFile | None]:
        """The parent folder's id (created if needed) and the file already under ``name``, if any."""

        def attempt() -> tuple[str, BoxFile | None]:
            # A session's bytes are worth one check of a cached folder (a small file's answer is checked).
            folder_id = self.folders.ensure(parent, confirm=size >= self.settings.chunked_threshold_bytes)
            try:
                existing = self.describe_conflict(preflight(self.http, folder_id, name, size))
            except BoxApiError as exc:
                if exc.http_status == 404 and folder_id == self.root_folder_id:
                    raise self.folders.root_not_found(str(exc)) from None
                raise
            if existing is not None and self.folders.moved(parent, existing.folders):
                raise StaleFolder(f"box: folder {parent!r} was renamed or moved in Box; resolving it again")
            return folder_id, existing

        return self._with_fresh_cache(attempt)

    def describe_conflict(self, conflict: dict[str, Any] | None) -> BoxFile | None:
        if conflict is None:
            return None
        if conflict.get("type") == "folder":
            raise PermanentError(
                f"box: a folder named {conflict.get('name')!r} is where a file should go (id {conflict.get('id')})"
            )
        known = BoxFile.from_entry(conflict)
        # The unchanged check needs all; the folders tell whether the file is where it was looked for.
        if known.sha1 is None or known.etag is None or known.size is None or known.folders is None:
            known = file_info(self.http, known.id)
        return known

    def _put_whole(self, folder_id: str, path: str, name: str, data: bytes, existing: BoxFile | None) -> PutResult:
        digest = hashlib.sha1(data).hexdigest()
        # What an upload of ours that Box stored without our seeing the answer made of the file:
        # finding our bytes there afterwards is then that upload, not "unchanged".
        unseen: PutStatus | None = None
        for _ in range(3):
            if existing is not None and existing.sha1 == digest:
                return PutResult(path, len(data), digest, unseen or "unchanged", existing.id)
            try:
                with write_journal() as journal:
                    stored = upload_whole(
                        self.http,
                        folder_id=folder_id,
                        name=name,
                        data=data,
                        sha1=digest,
                        file_id=existing.id if existing else None,
                        if_match=existing.etag if existing else None,
                    )
            except BoxApiError as exc:
                if journal.maybe_stored:
                    unseen = stored_status(existing)
                if exc.http_status == 409 and exc.code == "item_name_in_use" and existing is None and exc.conflicts():
                    existing = self.describe_conflict(exc.conflicts()[0])  # a concurrent upload got there first
                    continue
                if exc.http_status == 404 and existing is not None:
                    existing = None  # the file was deleted meanwhile: upload it as a new one
                    continue
                if exc.http_status == 412 and existing is not None:
                    existing = file_info(self.http, existing.id)  # changed since we looked (maybe by our retry)
                    continue
                raise
            check_stored(stored, digest, path)
            if existing is None:
                self.ensure_placed(stored, path)
            return PutResult(path, len(data), digest, stored_status(existing), stored.id)
        raise TransientError(f"box: {path!r} kept changing while uploading; the delivery will be retried")

    def ensure_placed(self, stored: BoxFile, path: str) -> None:
        """A new file must be in its path's folder: a cached folder id a Box user renamed or moved
        since puts it elsewhere. That stray file (ours, just made) is removed and StaleFolder
        raised: the path is resolved afresh."""
        parent = path.rpartition("/")[0]
        if not self.folders.moved(parent, stored.folders):
            return
        headers = {"If-Match": stored.etag} if stored.etag else None
        url = f"{self.http.api}/files/{stored.id}"
        try:
            self.http.call("DELETE", url, what=f"remove stray Box file {stored.id}", headers=headers).close()
        except BoxApiError as exc:
            log.warning("could not remove a file put in a renamed folder", file_id=stored.id, error=str(exc))
        raise StaleFolder(
            f"box: {path!r} landed in a folder renamed or moved in Box; removed, resolving {parent!r} again"
        )


def _remote(path: str, entry: dict[str, Any]) -> RemoteFile:
    return RemoteFile(path=path, size=int(entry.get("size") or 0), sha1=entry.get("sha1"), remote_id=str(entry["id"]))


@per_process
def for_settings(settings: BoxSettings) -> BoxDestination:
    """One BoxDestination (HTTP pool, token, folder cache) per process and configuration."""
    return BoxDestination(settings)


def from_config(destination: DestinationId, config: Config) -> BoxDestination:
    """The configured Box destination (the factory's entry point for kind ``box``)."""
    if config.destinations.box is None:
        raise ConfigError(f"destinations.box: {destination} is routed to but no Box destination is configured")
    return for_settings(config.destinations.box)
