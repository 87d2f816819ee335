"""Drive folders by path under the destination's root folder, created race-safely.

Drive allows two items with the same name in one folder, so "create if missing" is
list-then-create followed by a deterministic check: after creating, the folder lists the
name again and every racer keeps the same winner (oldest ``createdTime``, then smallest id);
a loser deletes the folder it made, if still empty, and uses the winner. Ids are cached per
path; a cached id that turned out gone (404) or trashed is forgotten and looked up again, and a
configured root folder in the trash is a permanent error.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from shared.destinations.base import RemoteFile
from shared.destinations.drive.http import DriveHttp
from shared.errors import ConfigError, PermanentError, TransientError
from shared.log import get_logger

FOLDER = "application/vnd.google-apps.folder"
ITEM_FIELDS = "id,name,mimeType,parents,size,md5Checksum,sha1Checksum,createdTime,appProperties"
log = get_logger(__name__)


def quoted(value: str) -> str:
    """``value`` as a string literal of Drive's query language."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def winner(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The item every racer keeps among same-named ones."""
    return min(items, key=lambda item: (str(item.get("createdTime", "")), str(item["id"])))


class DriveFolders:
    def __init__(self, http: DriveHttp, root_id: str, shared_drive_id: str | None) -> None:
        self.http, self.root_id, self.shared_drive_id = http, root_id, shared_drive_id
        self._ids: dict[str, str] = {"": root_id}
        self._lock = threading.Lock()
        # The drive holding the root folder (None: My Drive), once known: a Shared Drive's own
        # root (folder_id "root" with shared_drive_id) and My Drive's root need no asking.
        self._root_drive: tuple[str | None] | None = (
            (shared_drive_id,) if root_id == shared_drive_id else (None,) if root_id == "root" else None
        )

    # ---- listing ------------------------------------------------------------------------

    def scope(self) -> dict[str, str]:
        """The query parameters that select this destination's corpus (My Drive or the Shared Drive).

        files.list only returns a Shared Drive's items with ``corpora=drive`` (or the all-drives
        flags), so the root folder is asked once which drive holds it (see :meth:`root_drive`)."""
        drive_id = self.root_drive()
        params = {"supportsAllDrives": "true", "includeItemsFromAllDrives": "true"}
        if drive_id:
            params.update(corpora="drive", driveId=drive_id)
        return params

    def root_drive(self) -> str | None:
        """The Shared Drive holding the root folder (None: My Drive), asked once per instance.
        A ``shared_drive_id`` naming another drive is a ConfigError, each call: listing that drive
        finds nothing while files still land in the folder, so every put would add a duplicate."""
        if self._root_drive is None:
            self._root_drive = (self._drive_of(self.root_id),)
        (actual,) = self._root_drive
        if self.shared_drive_id is not None and actual != self.shared_drive_id:
            really = f"Shared Drive {actual!r}; set that or leave it out" if actual else "My Drive; leave it out"
            raise ConfigError(
                f"{self.http.where}.shared_drive_id: {self.shared_drive_id!r} is not the drive holding "
                f"folder_id {self.root_id!r}: expected the folder's own drive, which is {really}"
            )
        return actual

    def _field(self, item_id: str, name: str, what: str) -> Any:
        """One field of an item (files.get; DriveNotFound if it is gone altogether)."""
        with self.http.call(
            "GET",
            f"{self.http.api}/files/{item_id}",
            what=what,
            params={"supportsAllDrives": "true", "fields": name},
        ) as response:
            return response.json().get(name)

    def _drive_of(self, folder_id: str) -> str | None:
        drive_id = self._field(folder_id, "driveId", f"find the drive of folder {folder_id}")
        return str(drive_id) if drive_id else None

    def trashed(self, folder_id: str) -> bool:
        """Whether the item is in the trash (DriveNotFound if it is gone altogether)."""
        return bool(self._field(folder_id, "trashed", f"check folder {folder_id}"))

    def search(self, q: str, what: str) -> Iterator[dict[str, Any]]:
        """Every item matching ``q``, page by page."""
        token: str | None = None
        while True:
            params = {**self.scope(), "q": q, "pageSize": "1000", "fields": f"nextPageToken,files({ITEM_FIELDS})"}
            if token:
                params["pageToken"] = token
            with self.http.call("GET", f"{self.http.api}/files", what=what, params=params) as response:
                page = response.json()
            yield from page.get("files", [])
            token = page.get("nextPageToken")
            if not token:
                return

    def children(self, folder_id: str) -> Iterator[dict[str, Any]]:
        yield from self.search(f"{quoted(folder_id)} in parents and trashed = false", f"list folder {folder_id}")

    def subfolders(self, folder_id: str, path: str) -> list[str]:
        """The names of the subfolders of folder ``path`` (id ``folder_id``), by one listing; each
        name's id (the :func:`winner` among same-named ones) is remembered, so looking one of
        them up next (retention walks a table's day folders so) needs no query."""
        by_name: dict[str, list[dict[str, Any]]] = {}
        for item in self.children(folder_id):
            if item.get("mimeType") == FOLDER:
                by_name.setdefault(str(item["name"]), []).append(item)
        with self._lock:
            for name, items in by_name.items():
                self._ids[f"{path}/{name}" if path else name] = str(winner(items)["id"])
        return sorted(by_name)

    def named(self, folder_id: str, name: str, *, folders: bool | None = None) -> list[dict[str, Any]]:
        """Items called ``name`` in ``folder_id`` (only folders / only files when asked)."""
        q = f"name = {quoted(name)} and {quoted(folder_id)} in parents and trashed = false"
        if folders is not None:
            q += f" and mimeType {'=' if folders else '!='} {quoted(FOLDER)}"
        return list(self.search(q, f"find {name!r} in folder {folder_id}"))

    # ---- paths --------------------------------------------------------------------------

    def lookup(self, path: str) -> str | None:
        """The id of folder ``path`` (relative to the root), or None if any part is missing."""
        return self._walk(path, create=False)

    def ensure(self, path: str) -> str:
        """The id of folder ``path``, creating it and its parents as needed."""
        found = self._walk(path, create=True)
        assert found is not None
        return found

    def ensure_current(self, path: str) -> str:
        """:meth:`ensure`, with the folder then asked whether it is in the trash (one files.get):
        a folder trashed in the Drive UI, or inside a trashed folder, answers no 404, yet files
        put there vanish with it. A trashed folder is forgotten and looked up (or made) again."""
        folder = self.ensure(path)
        if not self.trashed(folder):
            return folder
        log.info("drive folder is in the trash; looking it up again", path=path, folder=folder)
        self.forget()
        self.require_root()
        folder = self.ensure(path)
        if self.trashed(folder):
            raise TransientError(f"drive folder {path!r} went to the trash while a file was put into it")
        return folder

    def require_root(self) -> None:
        """Raise when the configured root folder is gone (DriveNotFound) or in the trash
        (PermanentError): retrying heals neither, the folder_id must be restored or changed."""
        if self.trashed(self.root_id):
            raise PermanentError(
                f"drive folder_id {self.root_id!r} is in the trash: restore it from the trash or configure another folder_id"
            )

    def forget(self) -> None:
        with self._lock:
            self._ids = {"": self.root_id}

    def _walk(self, path: str, *, create: bool) -> str | None:
        parts = [p for p in path.split("/") if p]
        current, at = self.root_id, ""
        for part in parts:
            at = f"{at}/{part}" if at else part
            with self._lock:
                cached = self._ids.get(at)
            if cached is None:
                found = self.named(current, part, folders=True)
                if found:
                    cached = str(winner(found)["id"])
                elif not create:
                    return None
                else:
                    cached = self._create(current, part)
                with self._lock:
                    self._ids[at] = cached
            current = cached
        return current

    def _create(self, parent_id: str, name: str) -> str:
        body = {"name": name, "mimeType": FOLDER, "parents": [parent_id]}
        with self.http.call(
            "POST",
            f"{self.http.api}/files",
            what=f"create folder {name!r}",
            params={"supportsAllDrives": "true", "fields": "id,createdTime"},
            json=body,
        ) as response:
            mine = str(response.json()["id"])
        same = self.named(parent_id, name, folders=True)
        kept = str(winner(same)["id"]) if same else mine  # a listing that lags behind the create: ours
        if kept != mine:
            log.info("drive folder created concurrently; keeping the older one", name=name, kept=kept, dropped=mine)
            if not any(True for _ in self.children(mine)):
                self.http.delete(mine, f"drop duplicate folder {name!r}")
        return kept


def remote_file(path: str, item: dict[str, Any]) -> RemoteFile:
    """A Drive file resource (``id``, ``size``, ``sha1Checksum``, ``md5Checksum``) at ``path``."""
    return RemoteFile(
        path=path,
        size=int(item.get("size") or 0),
        sha1=item.get("sha1Checksum"),
        remote_id=str(item["id"]),
        md5=item.get("md5Checksum"),
    )
