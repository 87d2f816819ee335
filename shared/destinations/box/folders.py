"""Box folders by path under a root folder id: race-safe creation, lookups, listing.

Creation is create-first: ``POST /folders``; a 409 ``item_name_in_use`` means someone (maybe
a concurrent function) made it already, and its id is in ``context_info.conflicts``. So two
functions creating the same tree at once both end with the same ids, and no listing is
needed on the write path. Ids are cached per process (warm function instances reuse them);
a cached id that Box no longer knows (404) drops the cache of that root (:meth:`BoxFolders.forget`).
A Box user may also rename or move a cached folder: its id then lives on elsewhere. Reads and
deletes (``confirm=True``), and a folder looked up or created below a cached one, first ask Box
where the cached folder is (``path_collection``, one GET); a put into a fully cached folder
checks the ``path_collection`` Box returns with the file instead (:meth:`BoxFolders.moved`).
The root itself is never cached: a 404 for it is the configuration's (a ``ConfigError``), since
Box answers 404, not 403, for a folder the service account is not a collaborator on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from shared.destinations.box.http import BoxApiError, BoxHttp
from shared.errors import ConfigError, PermanentError, TransientError

PAGE = 1000
ITEM_FIELDS = "type,id,name,size,sha1,etag"
Chain = Sequence[tuple[str, str]]  # (id, name) of folders, from All Files down

# (api url, root id, path) -> folder id, shared by every BoxFolders in the process.
_ids: dict[tuple[str, str, str], str] = {}
_ids_lock = threading.Lock()
# (api url, root id, folder id) -> time.monotonic() when Box last said it is still at its path.
_confirmed: dict[tuple[str, str, str], float] = {}
# A folder checked this recently is not asked again (except before a delete): Box's per-user
# rate limit binds first (docs/capacity.md), and a check per stat/list would add one call to
# each; a folder a user renames is followed for at most this long.
CONFIRMED_FOR_S = 30.0


class StaleFolder(TransientError):
    """A cached folder id no longer exists in Box (someone deleted the folder)."""


def clear_cache() -> None:
    with _ids_lock:
        _ids.clear()
        _confirmed.clear()


def chain_of(item: dict[str, Any]) -> tuple[tuple[str, str], ...] | None:
    """The folders an item is in, from its ``path_collection`` (None when Box did not send it)."""
    collection = item.get("path_collection")
    if not isinstance(collection, dict):
        return None
    return tuple((str(e.get("id")), str(e.get("name", ""))) for e in collection.get("entries") or ())


class BoxFolders:
    """Folder ids for POSIX-style paths relative to ``root_id``."""

    def __init__(self, http: BoxHttp, root_id: str) -> None:
        self.http = http
        self.root_id = root_id

    def _key(self, path: str) -> tuple[str, str, str]:
        return (self.http.api, self.root_id, path)

    def _cached(self, path: str) -> str | None:
        if not path:
            return self.root_id
        with _ids_lock:
            return _ids.get(self._key(path))

    def _remember(self, path: str, folder_id: str) -> None:
        with _ids_lock:
            _ids[self._key(path)] = folder_id

    def root_not_found(self, error: str) -> ConfigError:
        """The error for a 404 on the root folder: forgetting cached ids cannot help."""
        return ConfigError(
            f"destinations.box.root_folder_id: folder {self.root_id!r} not found, or not shared with the app's "
            f"service account: collaborate it as an editor ({error})"
        )

    def forget(self) -> None:
        """Drop every cached id under this root (Box said 404 for one: a folder was deleted)."""
        with _ids_lock:
            for key in [k for k in _ids if k[:2] == (self.http.api, self.root_id)]:
                del _ids[key]
            for key in [k for k in _confirmed if k[:2] == (self.http.api, self.root_id)]:
                del _confirmed[key]

    def _walk(self, path: str, missing: Callable[[str, str, str], str | None]) -> str | None:
        """Resolve folder ``path`` one level at a time from the cache; a level not cached is
        ``missing(parent_id, name, sub_path)``: its id (remembered), or None to stop with None."""
        parts = [p for p in path.split("/") if p]
        folder_id = self.root_id
        for depth in range(1, len(parts) + 1):
            sub = "/".join(parts[:depth])
            cached = self._cached(sub)
            if cached is None:
                cached = missing(folder_id, parts[depth - 1], sub)
                if cached is None:
                    return None
                self._remember(sub, cached)
            folder_id = cached
        return folder_id

    def _resolve(
        self, path: str, missing: Callable[[str, str, str], str | None], confirm: bool, strict: bool = False
    ) -> str | None:
        """``_walk``, after asking Box where the deepest cached folder of ``path`` is when the
        answer is trusted (``confirm``) or built on (a level below it is looked up or created):
        a folder a user renamed or moved since drops the cache, and the path is resolved afresh.
        A folder Box placed within the last ``CONFIRMED_FOR_S`` is not asked again, unless ``strict``."""
        cached = self._deepest_cached(path)
        if (
            cached is not None
            and (confirm or cached[0] != path)
            and (strict or not self._confirmed_lately(cached[1]))
            and not self._still_at(*cached)
        ):
            self.forget()
        return self._walk(path, missing)

    def _confirmed_lately(self, folder_id: str) -> bool:
        with _ids_lock:
            at = _confirmed.get((self.http.api, self.root_id, folder_id))
        return at is not None and time.monotonic() - at < CONFIRMED_FOR_S

    def _deepest_cached(self, path: str) -> tuple[str, str] | None:
        """(sub_path, id) of the longest cached prefix of ``path``: its place in Box vouches for
        every cached level above it."""
        parts = [p for p in path.split("/") if p]
        for depth in range(len(parts), 0, -1):
            sub = "/".join(parts[:depth])
            folder_id = self._cached(sub)
            if folder_id is not None:
                return sub, folder_id
        return None

    def _still_at(self, path: str, folder_id: str) -> bool:
        """Whether folder ``folder_id`` is still folder ``path`` under the root (one GET)."""
        try:
            found = self.http.call(
                "GET",
                f"{self.http.api}/folders/{folder_id}",
                what=f"check Box folder {path!r}",
                params={"fields": "name,path_collection"},
            ).json()
        except BoxApiError as exc:
            if exc.http_status == 404:
                return False
            raise
        if not self.holds(path, [*(chain_of(found) or ()), (folder_id, str(found.get("name", "")))]):
            return False
        with _ids_lock:
            _confirmed[(self.http.api, self.root_id, folder_id)] = time.monotonic()
        return True

    def holds(self, path: str, chain: Chain) -> bool:
        """Whether ``chain`` (folder ids and names from All Files down) ends at folder ``path``
        under the root (Box compares names case-insensitively)."""
        ids = [folder_id for folder_id, _ in chain]
        if self.root_id not in ids:
            return False
        below = [name.casefold() for _, name in chain[ids.index(self.root_id) + 1 :]]
        return below == [p.casefold() for p in path.split("/") if p]

    def moved(self, path: str, chain: Chain | None) -> bool:
        """Whether an item Box describes as in folders ``chain`` is not in folder ``path`` (a cached
        id of a folder a Box user renamed or moved): then the cache is dropped."""
        if chain is None or self.holds(path, chain):
            return False
        self.forget()
        return True

    def ensure(self, path: str, *, confirm: bool = False) -> str:
        """The id of folder ``path``, creating it and its parents when missing."""
        folder_id = self._resolve(path, self.create, confirm)
        assert folder_id is not None  # create never answers None
        return folder_id

    def create(self, parent_id: str, name: str, path: str) -> str:
        """Create folder ``name`` in ``parent_id`` or return the id of the one already there."""
        what = f"create Box folder {path!r}"
        try:
            response = self.http.call(
                "POST", f"{self.http.api}/folders", what=what, json={"name": name, "parent": {"id": parent_id}}
            )
            return str(response.json()["id"])
        except BoxApiError as exc:
            if exc.http_status == 404 and parent_id == self.root_id:
                raise self.root_not_found(str(exc)) from None
            if exc.http_status == 404:
                self.forget()
                raise StaleFolder(
                    f"{what}: parent folder {parent_id} is gone; the path will be resolved again"
                ) from None
            if exc.http_status != 409:
                raise
            for conflict in exc.conflicts():
                if conflict.get("type") == "folder" and conflict.get("id"):
                    return str(conflict["id"])
                if conflict.get("type") == "file":
                    raise PermanentError(
                        f"{what}: a file named {name!r} is already there (id {conflict.get('id')})"
                    ) from None
            found = self.find(parent_id, name)  # a 409 without conflicts: look it up
            if found is not None and found.get("type") == "folder":
                return str(found["id"])
            raise

    def lookup(self, path: str, *, confirm: bool = False, strict: bool = False) -> str | None:
        """The id of folder ``path``, or None when any part of it does not exist (creates nothing).
        ``confirm``: a cached id is checked with Box first (at most every ``CONFIRMED_FOR_S``;
        every time with ``strict``, before a delete)."""

        def existing(parent_id: str, name: str, _path: str) -> str | None:
            entry = self.find(parent_id, name)
            return str(entry["id"]) if entry is not None and entry.get("type") == "folder" else None

        return self._resolve(path, existing, confirm, strict)

    def files_below(self, folder_id: str, path: str) -> list[tuple[str, dict[str, Any]]]:
        """Every file in folder ``path`` (id ``folder_id``) and its subfolders, as (path, entry).
        A subfolder deleted during the walk (404) is skipped: a listing a moment later would not
        show it either. The folder itself gone is a StaleFolder (the cache is dropped)."""
        found: list[tuple[str, dict[str, Any]]] = []
        pending = [(folder_id, path)]
        while pending:
            current, at = pending.pop()
            try:
                entries = list(self.items(current))
            except BoxApiError as exc:
                if exc.http_status != 404:
                    raise
                if current != folder_id:
                    continue
                self.forget()
                raise StaleFolder(f"Box folder {path!r} ({folder_id}) vanished while it was listed") from None
            for entry in entries:
                child = f"{at}/{entry['name']}" if at else str(entry["name"])
                if entry.get("type") == "folder":
                    pending.append((str(entry["id"]), child))
                elif entry.get("type") == "file":
                    found.append((child, entry))
        return found

    def subfolders(self, folder_id: str, path: str) -> list[str]:
        """The names of the subfolders of folder ``path`` (id ``folder_id``), by one listing. Their
        ids are remembered, as placed by Box just now: listing one of them next (retention walks
        a table's day folders so) needs no lookup and no check of where it is."""
        names: list[str] = []
        for entry in self.items(folder_id):
            if entry.get("type") != "folder":
                continue
            name, child_id = str(entry["name"]), str(entry["id"])
            self._remember(f"{path}/{name}" if path else name, child_id)
            with _ids_lock:
                _confirmed[(self.http.api, self.root_id, child_id)] = time.monotonic()
            names.append(name)
        return names

    def find(self, folder_id: str, name: str) -> dict[str, Any] | None:
        """The entry named ``name`` in ``folder_id`` (Box compares names case-insensitively)."""
        folded = None
        for entry in self.items(folder_id):
            if entry.get("name") == name:
                return entry
            if folded is None and str(entry.get("name", "")).casefold() == name.casefold():
                folded = entry
        return folded

    def items(self, folder_id: str) -> Iterator[dict[str, Any]]:
        """Every entry of a folder, page by page (marker pagination, offset as fallback)."""
        url = f"{self.http.api}/folders/{folder_id}/items"
        params: dict[str, Any] = {"fields": ITEM_FIELDS, "limit": PAGE, "usemarker": "true"}
        seen = 0
        while True:
            try:
                data = self.http.call("GET", url, what=f"list Box folder {folder_id}", params=params).json()
            except BoxApiError as exc:
                if exc.http_status == 404 and folder_id == self.root_id:
                    raise self.root_not_found(str(exc)) from None
                raise
            entries = data.get("entries") or []
            yield from entries
            seen += len(entries)
            marker = data.get("next_marker")
            if marker:
                params["marker"] = marker
                continue
            if "next_marker" in data or not entries or seen >= int(data.get("total_count", seen)):
                return
            params.pop("usemarker", None)
            params["offset"] = seen
