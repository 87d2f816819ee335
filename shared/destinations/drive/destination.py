"""The Drive destination: the Destination protocol on a Drive folder (My Drive or a Shared Drive).

Paths are relative to ``destinations.drive.NAME.folder_id``. ``put`` streams the source into
a resumable upload session (no temp file; the next chunk is read while one is sent, so at most
two chunks are in memory), hashing as it reads; the file appears only when its last chunk
arrives, and Drive's ``md5Checksum`` (and ``sha1Checksum``) of the stored file must equal what
was read. The same name with the same
SHA-1 → ``unchanged`` (without reading the source when the caller knows the SHA-1; otherwise
the session is cancelled before its last chunk); different bytes → new content of the same
file (Drive keeps the old revision). Two racers creating one name keep one file: the older.
"""

from __future__ import annotations

import builtins
import hashlib
import time
from collections.abc import Iterator, Mapping
from typing import Any, Unpack

from shared.config import Config
from shared.config.drive import DriveDestination as DriveSettings
from shared.destinations.base import (
    Abilities,
    ByteStream,
    DeliveryLedger,
    Progress,
    PutResult,
    PutStatus,
    PutViaResumable,
    RemoteFile,
    ResumeOptions,
    normalize_path,
    range_header,
    skipped_to,
)
from shared.destinations.drive.folders import FOLDER, DriveFolders, quoted, remote_file, winner
from shared.destinations.drive.http import DriveHttp, DriveNotFound
from shared.destinations.drive.labels import app_properties
from shared.destinations.drive.labels import query as label_query
from shared.destinations.drive.readahead import ReadAhead
from shared.destinations.drive.upload import ResumableUpload, SessionGone
from shared.errors import ConfigError, PermanentError, TransientError
from shared.ids import DestinationId
from shared.log import get_logger
from shared.per_process import per_process

log = get_logger(__name__)


class DriveDestination(PutViaResumable):
    """A Drive folder as a Destination (``drive:NAME``; SHA-1 and MD5 on every file)."""

    def __init__(self, name: str, settings: DriveSettings, *, http: DriveHttp | None = None) -> None:
        self.id = DestinationId("drive", name)
        self.name = str(self.id)
        self.settings = settings
        # Drive itself keeps names as given (even twice), but files.list's ``name = 'x'`` (how put
        # and stat find a file) matches case-insensitively, so here Report.csv and report.csv are one.
        self.abilities = Abilities(
            hashes=frozenset({"sha1"}), atomic_put=True, layout=settings.layout, resumable=True, folds_case=True
        )
        self.http = http or DriveHttp(settings, f"destinations.drive.{name}")
        root = (
            settings.shared_drive_id
            if settings.folder_id == "root" and settings.shared_drive_id
            else settings.folder_id
        )
        self.folders = DriveFolders(self.http, root, settings.shared_drive_id)

    # ---- Destination -------------------------------------------------------------------

    def put_resumable(
        self, path: str, source: ByteStream, size: int, **options: Unpack[ResumeOptions]
    ) -> PutResult | Progress:
        """See :class:`shared.destinations.base.Resumable`: the session URI and the SHA-1 of the
        bytes Drive holds are the resume state; on resume those bytes are read from the source
        and must hash the same, else the session is dropped and the upload starts over.
        ``labels`` are sent as in :meth:`put_labelled` (a resumed session has them already)."""
        labels = options.get("labels")
        return self._put(path, source, size, options, app_properties(labels) if labels else None)

    # ---- Labelled ------------------------------------------------------------------------

    def put_labelled(
        self,
        path: str,
        source: ByteStream,
        size: int,
        labels: Mapping[str, str],
        *,
        ledger: DeliveryLedger | None = None,
    ) -> PutResult:
        """``put`` with ``labels`` as the file's appProperties: sent with the upload's metadata
        (the file appears with them), or patched onto a file found ``unchanged``."""
        outcome = self._put(path, source, size, {"ledger": ledger}, app_properties(labels))
        assert isinstance(outcome, PutResult)  # no deadline: it never pauses
        return outcome

    def find_labelled(self, path: str, labels: Mapping[str, str]) -> RemoteFile | None:
        """The file in ``path``'s folder whose appProperties hold ``labels`` (files.list with
        ``appProperties has {...}`` terms); the older one if a race left two."""
        path = normalize_path(path)
        parent = path.rpartition("/")[0]
        folder_id = self._fresh(lambda: self.folders.lookup(parent))
        if folder_id is None:
            return None
        q = f"{quoted(folder_id)} in parents and trashed = false and mimeType != {quoted(FOLDER)} and {label_query(labels)}"
        found = list(self.folders.search(q, f"find the labelled copy of {path!r}"))
        if not found:
            return None
        item = winner(found)
        return remote_file(f"{parent}/{item['name']}" if parent else str(item["name"]), item)

    # ---- put -----------------------------------------------------------------------------

    def _put(
        self, path: str, source: ByteStream, size: int, options: ResumeOptions, props: dict[str, str] | None
    ) -> PutResult | Progress:
        sha1, deadline = options.get("sha1"), options.get("deadline")
        path = normalize_path(path)
        parent, _, name = path.rpartition("/")
        if not name:
            raise ValueError(f"path {path!r} names no file")
        hashes = (hashlib.sha1(), hashlib.md5())
        existing, target, upload, done = self._fresh(
            lambda: self._session(parent, name, size, options, props, source, hashes), retrying=path
        )
        if upload is None:  # the same name holds the same SHA-1
            assert existing is not None and sha1 is not None
            return self._labelled(PutResult(path, size, sha1, "unchanged", existing["id"]), existing, props)
        outcome = self._send(path, upload, done, source, hashes, existing, target, deadline)
        return self._labelled(outcome, existing, props)

    def _session(
        self,
        parent: str,
        name: str,
        size: int,
        options: ResumeOptions,
        props: dict[str, str] | None,
        source: ByteStream,
        hashes: tuple[Any, Any],
    ) -> tuple[dict[str, Any] | None, dict[str, Any], ResumableUpload | None, int]:
        """The existing file, the upload's target, and the session with the bytes it holds (no
        session: the file is unchanged). Raises DriveNotFound (before reading the source) when a
        cached folder id is gone."""
        folder_id = self.folders.ensure_current(parent)
        existing = self._file(folder_id, name)
        sha1 = options.get("sha1")
        target: dict[str, Any] = {"folder_id": folder_id, "file_id": existing["id"] if existing else None, "size": size}
        if existing is not None and sha1 is not None and existing.get("sha1Checksum") == sha1:
            return existing, target, None, 0
        upload, done = ResumableUpload.resumed(self.http, options.get("resume"), target, source, hashes, self.name)
        if upload is None:
            metadata: dict[str, Any] = {"name": name} if existing else {"name": name, "parents": [folder_id]}
            if props:
                metadata["appProperties"] = props
            upload = ResumableUpload.start(self.http, size, metadata, file_id=target["file_id"])
        return existing, target, upload, done

    def _labelled(
        self, outcome: PutResult | Progress, existing: dict[str, Any] | None, props: dict[str, str] | None
    ) -> PutResult | Progress:
        """A file found ``unchanged`` gets the labels it lacks (one metadata-only update)."""
        if not props or existing is None or not isinstance(outcome, PutResult) or outcome.status != "unchanged":
            return outcome
        if all((existing.get("appProperties") or {}).get(k) == v for k, v in props.items()):
            return outcome
        with self.http.call(
            "PATCH",
            f"{self.http.api}/files/{existing['id']}",
            what=f"label {outcome.path!r}",
            params={"supportsAllDrives": "true", "fields": "id"},
            json={"appProperties": props},
        ):
            pass
        return outcome

    def stat(self, path: str) -> RemoteFile | None:
        path = normalize_path(path)
        parent, _, name = path.rpartition("/")
        folder_id = self._fresh(lambda: self.folders.lookup(parent))
        found = None if folder_id is None or not name else self._file(folder_id, name, folder_is_error=False)
        return None if found is None else remote_file(path, found)

    def list(self, prefix: str = "", *, hashes: bool = True) -> Iterator[RemoteFile]:
        prefix = normalize_path(prefix)
        folder_id = self._fresh(lambda: self.folders.lookup(prefix))
        if folder_id is None:
            return
        found: builtins.list[RemoteFile] = []
        pending = [(folder_id, prefix)]
        while pending:
            current, at = pending.pop()
            for item in self.folders.children(current):
                child = f"{at}/{item['name']}" if at else str(item["name"])
                if item.get("mimeType") == FOLDER:
                    pending.append((str(item["id"]), child))
                else:
                    found.append(remote_file(child, item))
        yield from sorted(found, key=lambda f: f.path)

    def list_folders(self, prefix: str = "") -> builtins.list[str]:
        prefix = normalize_path(prefix)
        folder_id = self._fresh(lambda: self.folders.lookup(prefix))
        if folder_id is None:
            return []
        return self.folders.subfolders(folder_id, prefix)

    def delete(self, path: str) -> None:
        found = self.stat(path)
        if found is not None and found.remote_id is not None:
            self.http.delete(found.remote_id, f"delete {found.path!r}")

    def delete_folder(self, path: str, *, recursive: bool = True) -> bool:
        path = normalize_path(path)
        if not path:
            raise ValueError(f"{self.name}: the destination root is never deleted")
        folder_id = self._fresh(lambda: self.folders.lookup(path))
        if folder_id is None:
            return True
        if not recursive and next(iter(self.folders.children(folder_id)), None) is not None:
            return False
        self.http.delete(folder_id, f"delete folder {path!r}")  # Drive removes what it holds with it
        self.folders.forget()
        return True

    def mkdirs(self, path: str) -> None:
        path = normalize_path(path)
        if self.stat(path) is not None:
            raise PermanentError(f"{self.name}: cannot create folder {path}: a file is there")
        self._fresh(lambda: self.folders.ensure(path))

    def close(self) -> None:
        """Nothing to release: the HTTP pool, token and folder cache serve the whole process."""

    def location(self, path: str) -> str:
        return f"{self.name}:{normalize_path(path)}"

    # ---- Readable ------------------------------------------------------------------------

    def open(self, path: str, start: int = 0) -> ByteStream:
        found = self.stat(path)
        if found is None or found.remote_id is None:
            raise PermanentError(f"{self.name}: {normalize_path(path)}: no such file")
        response = self.http.call(
            "GET",
            f"{self.http.api}/files/{found.remote_id}",
            what=f"download {path!r}",
            params={"alt": "media", "supportsAllDrives": "true"},
            headers=range_header(start),
            stream=True,
        )
        body = response.raw
        body.decode_content = True
        stream: ByteStream = body
        return skipped_to(stream, start) if start and response.status_code == 200 else stream

    # ---- operator helpers ----------------------------------------------------------------

    def entries(self, path: str = "") -> builtins.list[dict[str, Any]]:
        """The items of folder ``path`` as the operator commands show them (type ``folder`` or
        ``file``, id, name, size, sha1, md5); PermanentError if the folder is missing."""
        path = normalize_path(path)
        folder_id = self._fresh(lambda: self.folders.lookup(path))
        if folder_id is None:
            raise PermanentError(f"{self.name}: no folder {path or '/'!r} under folder {self.folders.root_id}")
        return [
            {
                "type": "folder" if item.get("mimeType") == FOLDER else "file",
                "id": item["id"],
                "name": item["name"],
                "size": None if item.get("mimeType") == FOLDER else int(item.get("size") or 0),
                "sha1": item.get("sha1Checksum"),
                "md5": item.get("md5Checksum"),
            }
            for item in sorted(self.folders.children(folder_id), key=lambda item: str(item["name"]))
        ]

    # ---- internals -------------------------------------------------------------------------

    def _fresh(self, fn: Any, *, retrying: str | None = None) -> Any:
        """Run ``fn``; when a cached folder id turned out gone (404), forget the cache and run again.
        With ``retrying`` (a put's path) a second 404 is transient (the folder went again meanwhile)
        unless the configured root folder itself is gone."""
        try:
            return fn()
        except DriveNotFound:
            self.folders.forget()
        try:
            return fn()
        except DriveNotFound as exc:
            if retrying is None or self.folders.root_id == "root":
                raise
            self.folders.require_root()
            raise TransientError(f"{self.name}: {retrying}: its folder vanished while it was put ({exc})") from exc

    def _file(self, folder_id: str, name: str, *, folder_is_error: bool = True) -> dict[str, Any] | None:
        """The file called ``name`` in the folder (the kept one of same-named files), or None."""
        found = self.folders.named(folder_id, name)
        if folder_is_error and any(item.get("mimeType") == FOLDER for item in found):
            raise PermanentError(f"{self.name}: a folder named {name!r} is where a file should go")
        found = [item for item in found if item.get("mimeType") != FOLDER]
        return winner(found) if found else None

    def _send(
        self,
        path: str,
        upload: ResumableUpload,
        done: int,
        source: ByteStream,
        hashes: tuple[Any, Any],
        existing: dict[str, Any] | None,
        target: dict[str, Any],
        deadline: float | None,
    ) -> PutResult | Progress:
        size, chunk_size, sent = upload.size, self.settings.chunk_size_bytes, 0
        ahead = ReadAhead(source, self.name)
        try:
            ahead.ask(min(chunk_size, size - done))
            while True:
                chunk = ahead.take()
                for h in hashes:
                    h.update(chunk)
                if done + len(chunk) < size:  # read the next chunk while this one is sent
                    ahead.ask(min(chunk_size, size - done - len(chunk)))
                else:
                    if source.read(1):
                        raise PermanentError(
                            f"{self.name}: {path}: the source has more than the announced {size} bytes"
                        )
                    digest = hashes[0].hexdigest()
                    if existing is not None and existing.get("sha1Checksum") == digest:
                        upload.cancel()  # same bytes: no new revision
                        return PutResult(path, size, digest, "unchanged", existing["id"])
                outcome = upload.send_whole(done, chunk, path)
                sent += len(chunk)
                if isinstance(outcome, dict):
                    return self._finished(path, outcome, hashes, existing, size)
                done = outcome
                if deadline is not None and time.monotonic() >= deadline:
                    state = {**target, "session": upload.uri, "done": done, "prefix_sha1": hashes[0].hexdigest()}
                    log.info("drive upload paused at its deadline", path=path, stored=done, sent=sent)
                    return Progress(state=state, bytes_done=done, bytes_sent=sent)
        except SessionGone:
            raise
        except BaseException as exc:
            if deadline is None or isinstance(exc, PermanentError):
                upload.cancel()  # a resumable upload keeps its session for the retry to continue
            raise
        finally:
            ahead.close()

    def _finished(
        self, path: str, stored: dict[str, Any], hashes: tuple[Any, Any], existing: dict[str, Any] | None, size: int
    ) -> PutResult:
        """Drive's md5Checksum and size of the stored file must be what was read from the source."""
        sha1, md5 = hashes[0].hexdigest(), hashes[1].hexdigest()
        if stored.get("md5Checksum") != md5 or int(stored.get("size", -1)) != size:
            raise TransientError(
                f"{self.name}: {path}: Drive stored md5 {stored.get('md5Checksum')} size "
                f"{stored.get('size')}, sent md5 {md5} size {size}; the delivery will be retried"
            )
        kept = self._keep_one(path, stored, sha1) if existing is None else str(stored["id"])
        status: PutStatus = "new_version" if existing is not None else "uploaded"
        return PutResult(path, size, sha1, status, kept)

    def _keep_one(self, path: str, stored: dict[str, Any], sha1: str) -> str:
        """Another put of the same new name may have raced ours: the older file stays (its id)."""
        parent_id = (stored.get("parents") or [None])[0]
        if parent_id is None:
            return str(stored["id"])
        same = self.folders.named(str(parent_id), str(stored["name"]), folders=False)
        kept = winner(same) if same else stored
        if kept["id"] == stored["id"]:
            return str(stored["id"])
        self.http.delete(str(stored["id"]), f"drop duplicate {path!r}")
        if kept.get("sha1Checksum") != sha1:
            raise TransientError(f"{self.name}: {path} was created concurrently with other bytes; retrying updates it")
        return str(kept["id"])


@per_process
def for_settings(name: str, settings: DriveSettings) -> DriveDestination:
    """One DriveDestination (HTTP pool, token, folder cache) per process and configuration."""
    return DriveDestination(name, settings)


def from_config(destination: DestinationId, config: Config) -> DriveDestination:
    """The configured Drive folder (the factory's entry point for kind ``drive``)."""
    settings = config.destinations.drive.get(destination.name)
    if settings is None:
        known = ", ".join(config.destinations.drive) or "none configured"
        raise ConfigError(
            f"destinations.drive: {destination} is routed to but no Drive folder {destination.name!r} "
            f"is configured (known: {known})"
        )
    return for_settings(destination.name, settings)
