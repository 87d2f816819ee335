"""The folder tree: names, folders, files and their versions, as Box keeps them.

Names are unique per folder, case-insensitively, across files and folders (Box's rule);
the check and the insert happen in one transaction, backed by a unique index, so the
loser of a creation race gets ``item_name_in_use`` with the winner in the conflict.
Deletes are permanent (no trash).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from .blobs import BlobStore, StoredBody
from .db import Database
from .errors import BoxError, not_found
from .render import ROOT_ID, ROOT_NAME
from .timefmt import now_iso

MAX_NAME_LENGTH = 255


class NameInUse(Exception):
    """The name is taken in the parent folder by ``existing``."""

    def __init__(self, existing: sqlite3.Row) -> None:
        self.existing = existing
        super().__init__(f"name in use by {existing['type']} {existing['id']}")


def name_key(name: str) -> str:
    return name.casefold()


def validate_name(name: object, field: str = "name") -> str:
    """Box's name rules from the API reference; 400 ``item_name_invalid``/``_too_long``."""
    if not isinstance(name, str) or name == "":
        raise BoxError(400, "bad_request", f"'{field}' is required and must be a non-empty string")
    if len(name) > MAX_NAME_LENGTH:
        raise BoxError(400, "item_name_too_long", "Item name too long")
    if (
        name in (".", "..")
        or "/" in name
        or "\\" in name
        or name != name.strip(" ")
        or any(ord(char) < 32 or ord(char) == 127 for char in name)
    ):
        raise BoxError(400, "item_name_invalid", "Item name invalid")
    return name


def parse_id(raw: str) -> int:
    """A path id; Box answers 405 for ids that are not numbers (no route matches them)."""
    if not raw.isdigit():
        raise BoxError(405, "method_not_allowed", "Method Not Allowed")
    return int(raw)


@dataclass
class Page:
    rows: list[sqlite3.Row]
    total: int


_CHILD_COLUMNS = "i.*, v.sha1 AS v_sha1, v.size AS v_size, CASE i.type WHEN 'folder' THEN 0 ELSE 1 END AS rank"
_SORT_SQL = {
    "name": "i.name_key",
    "id": "i.id",
    "date": "i.modified_at",
    "size": "COALESCE(v.size, 0)",
}


class ItemStore:
    """Reads and writes of the folder tree; bytes go through :class:`BlobStore`."""

    def __init__(self, db: Database, blobs: BlobStore, owner_id: str) -> None:
        self.db = db
        self.blobs = blobs
        self.ensure_root(owner_id)

    def ensure_root(self, owner_id: str) -> None:
        """The root folder "0" ("All Files") always exists."""
        with self.db.tx() as conn:
            conn.execute(
                "INSERT INTO items (id, type, parent_id, name, name_key, created_by, modified_by, owned_by)"
                " VALUES (?, 'folder', NULL, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                (ROOT_ID, ROOT_NAME, name_key(ROOT_NAME), owner_id, owner_id, owner_id),
            )

    # -- reads -------------------------------------------------------------------------------

    def get(self, item_id: int) -> sqlite3.Row | None:
        return self.db.query_one("SELECT * FROM items WHERE id = ?", (item_id,))

    def folder(self, raw_id: str, *, in_path: bool = True) -> sqlite3.Row:
        """The folder ``raw_id`` (from the URL path, or from a request body when not ``in_path``); 404 if none."""
        if not in_path and not raw_id.isdigit():
            raise not_found("folder", raw_id, "d")
        row = self.get(parse_id(raw_id))
        if row is None or row["type"] != "folder":
            raise not_found("folder", raw_id, "d")
        return row

    def file(self, raw_id: str) -> sqlite3.Row:
        row = self.get(parse_id(raw_id))
        if row is None or row["type"] != "file":
            raise not_found("file", raw_id, "f")
        return row

    def version(self, version_id: int) -> sqlite3.Row:
        row = self.db.query_one("SELECT * FROM versions WHERE id = ?", (version_id,))
        assert row is not None, f"version {version_id} missing"
        return row

    def versions_of(self, file_id: int) -> list[sqlite3.Row]:
        return self.db.query("SELECT * FROM versions WHERE file_id = ? ORDER BY number DESC", (file_id,))

    def ancestors(self, row: sqlite3.Row) -> list[sqlite3.Row]:
        """The folders from the root down to the item's parent."""
        chain: list[sqlite3.Row] = []
        parent_id = row["parent_id"]
        while parent_id is not None:
            parent = self.get(parent_id)
            if parent is None:
                break
            chain.append(parent)
            parent_id = parent["parent_id"]
        chain.reverse()
        return chain

    def folder_size(self, folder_id: int) -> int:
        row = self.db.query_one(
            "WITH RECURSIVE tree(id) AS (SELECT ? UNION ALL SELECT i.id FROM items i JOIN tree t ON i.parent_id = t.id)"
            " SELECT COALESCE(SUM(v.size), 0) AS total FROM tree t JOIN items i ON i.id = t.id"
            " JOIN versions v ON v.id = i.version_id",
            (folder_id,),
        )
        return int(row["total"]) if row else 0

    def total_size(self) -> int:
        row = self.db.query_one(
            "SELECT COALESCE(SUM(v.size), 0) AS total FROM items i JOIN versions v ON v.id = i.version_id"
        )
        return int(row["total"]) if row else 0

    def children(self, folder_id: int, *, sort: str, descending: bool, offset: int, limit: int) -> Page:
        """A page of a folder's items: folders first, then files, each by ``sort``."""
        direction = "DESC" if descending else "ASC"
        rows = self.db.query(
            f"SELECT {_CHILD_COLUMNS} FROM items i LEFT JOIN versions v ON v.id = i.version_id"
            f" WHERE i.parent_id = ? ORDER BY rank, {_SORT_SQL[sort]} {direction}, i.id {direction}"
            " LIMIT ? OFFSET ?",
            (folder_id, limit, offset),
        )
        total = self.db.query_one("SELECT COUNT(*) AS n FROM items WHERE parent_id = ?", (folder_id,))
        return Page(rows=rows, total=int(total["n"]) if total else 0)

    def children_after(self, folder_id: int, after: tuple[int, str, int] | None, limit: int) -> list[sqlite3.Row]:
        """Marker paging: items strictly after the key ``(rank, name_key, id)``, in key order."""
        where, params = "i.parent_id = ?", [folder_id]
        if after is not None:
            where += " AND (CASE i.type WHEN 'folder' THEN 0 ELSE 1 END, i.name_key, i.id) > (?, ?, ?)"
            params.extend(after)
        return self.db.query(
            f"SELECT {_CHILD_COLUMNS} FROM items i LEFT JOIN versions v ON v.id = i.version_id"
            f" WHERE {where} ORDER BY rank, i.name_key, i.id LIMIT ?",
            (*params, limit),
        )

    @staticmethod
    def _named(conn: sqlite3.Connection, parent_id: int, name: str) -> sqlite3.Row | None:
        return conn.execute(
            "SELECT * FROM items WHERE parent_id = ? AND name_key = ?", (parent_id, name_key(name))
        ).fetchone()

    def named(self, parent_id: int, name: str) -> sqlite3.Row | None:
        return self.db.query_one(
            "SELECT * FROM items WHERE parent_id = ? AND name_key = ?", (parent_id, name_key(name))
        )

    # -- writes ------------------------------------------------------------------------------

    def create_folder(self, parent_id: int, name: str, user_id: str) -> sqlite3.Row:
        now = now_iso()
        with self.db.tx() as conn:
            existing = self._named(conn, parent_id, name)
            if existing is not None:
                raise NameInUse(existing)
            item_id = Database.next_id(conn, "item")
            conn.execute(
                "INSERT INTO items (id, type, parent_id, name, name_key, created_at, modified_at,"
                " content_created_at, content_modified_at, created_by, modified_by, owned_by)"
                " VALUES (?, 'folder', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (item_id, parent_id, name, name_key(name), now, now, now, now, user_id, user_id, user_id),
            )
        row = self.get(item_id)
        assert row is not None
        return row

    def create_file(
        self,
        parent_id: int,
        name: str,
        body: StoredBody,
        user_id: str,
        *,
        content_created_at: str | None = None,
        content_modified_at: str | None = None,
    ) -> sqlite3.Row:
        """Create a file whose bytes are the temp file ``body.path`` (moved into place)."""
        now = now_iso()
        with self.db.tx() as conn:
            parent = conn.execute("SELECT id FROM items WHERE id = ? AND type = 'folder'", (parent_id,)).fetchone()
            if parent is None:
                raise not_found("folder", str(parent_id), "d")
            existing = self._named(conn, parent_id, name)
            if existing is not None:
                raise NameInUse(existing)
            item_id = Database.next_id(conn, "item")
            version_id = Database.next_id(conn, "version")
            self.blobs.install(body.path, version_id)
            conn.execute(
                "INSERT INTO versions (id, file_id, number, sha1, size, name, created_at, modified_at, modified_by)"
                " VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?)",
                (version_id, item_id, body.sha1, body.size, name, now, now, user_id),
            )
            conn.execute(
                "INSERT INTO items (id, type, parent_id, name, name_key, created_at, modified_at,"
                " content_created_at, content_modified_at, created_by, modified_by, owned_by, version_id)"
                " VALUES (?, 'file', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    item_id, parent_id, name, name_key(name), now, now,
                    content_created_at or now, content_modified_at or now,
                    user_id, user_id, user_id, version_id,
                ),
            )  # fmt: skip
        row = self.get(item_id)
        assert row is not None
        return row

    def add_version(
        self,
        file_id: int,
        body: StoredBody,
        user_id: str,
        *,
        new_name: str | None = None,
        if_match: str | None = None,
        content_modified_at: str | None = None,
    ) -> sqlite3.Row:
        """Make ``body`` the file's current version (optionally renaming it)."""
        now = now_iso()
        with self.db.tx() as conn:
            row = conn.execute("SELECT * FROM items WHERE id = ? AND type = 'file'", (file_id,)).fetchone()
            if row is None:
                raise not_found("file", str(file_id), "f")
            check_if_match(row, if_match)
            name = row["name"]
            if new_name is not None and new_name != name:
                existing = self._named(conn, row["parent_id"], new_name)
                if existing is not None and existing["id"] != file_id:
                    raise NameInUse(existing)
                name = new_name
            number = conn.execute("SELECT MAX(number) AS n FROM versions WHERE file_id = ?", (file_id,)).fetchone()
            version_id = Database.next_id(conn, "version")
            self.blobs.install(body.path, version_id)
            conn.execute(
                "INSERT INTO versions (id, file_id, number, sha1, size, name, created_at, modified_at, modified_by)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (version_id, file_id, int(number["n"] or 0) + 1, body.sha1, body.size, name, now, now, user_id),
            )
            conn.execute(
                "UPDATE items SET version_id = ?, name = ?, name_key = ?, etag = etag + 1,"
                " sequence_id = sequence_id + 1, modified_at = ?, modified_by = ?, content_modified_at = ?"
                " WHERE id = ?",
                (version_id, name, name_key(name), now, user_id, content_modified_at or now, file_id),
            )
        updated = self.get(file_id)
        assert updated is not None
        return updated

    def update_folder(
        self, folder_id: int, *, name: str | None, parent_id: int | None, if_match: str | None, user_id: str
    ) -> sqlite3.Row:
        """Rename and/or move a folder (Box's ``PUT /folders/:id``); its subtree moves with it."""
        if folder_id == ROOT_ID:
            raise BoxError(403, "access_denied_insufficient_permissions", "The root folder cannot be changed")
        with self.db.tx() as conn:
            row = conn.execute("SELECT * FROM items WHERE id = ? AND type = 'folder'", (folder_id,)).fetchone()
            if row is None:
                raise not_found("folder", str(folder_id), "d")
            check_if_match(row, if_match)
            target = row["parent_id"] if parent_id is None else parent_id
            self._check_move_target(conn, folder_id, target)
            new_name = row["name"] if name is None else name
            existing = self._named(conn, target, new_name)
            if existing is not None and existing["id"] != folder_id:
                raise NameInUse(existing)
            conn.execute(
                "UPDATE items SET parent_id = ?, name = ?, name_key = ?, etag = etag + 1,"
                " sequence_id = sequence_id + 1, modified_at = ?, modified_by = ? WHERE id = ?",
                (target, new_name, name_key(new_name), now_iso(), user_id, folder_id),
            )
        updated = self.get(folder_id)
        assert updated is not None
        return updated

    @staticmethod
    def _check_move_target(conn: sqlite3.Connection, folder_id: int, target: int) -> None:
        """The new parent must be a folder outside the moved one's subtree."""
        found = conn.execute("SELECT id, type FROM items WHERE id = ?", (target,)).fetchone()
        if found is None or found["type"] != "folder":
            raise not_found("folder", str(target), "d")
        ancestor: int | None = target
        while ancestor is not None:
            if ancestor == folder_id:
                raise BoxError(400, "bad_request", "A folder cannot be moved into itself or one of its subfolders")
            up = conn.execute("SELECT parent_id FROM items WHERE id = ?", (ancestor,)).fetchone()
            ancestor = up["parent_id"] if up is not None else None

    def delete_file(self, row: sqlite3.Row, if_match: str | None) -> None:
        with self.db.tx() as conn:
            current = conn.execute("SELECT * FROM items WHERE id = ?", (row["id"],)).fetchone()
            if current is None:
                raise not_found("file", str(row["id"]), "f")
            check_if_match(current, if_match)
            version_ids = [v["id"] for v in conn.execute("SELECT id FROM versions WHERE file_id = ?", (row["id"],))]
            conn.execute("DELETE FROM versions WHERE file_id = ?", (row["id"],))
            conn.execute("DELETE FROM items WHERE id = ?", (row["id"],))
        self.blobs.delete_blobs(version_ids)

    def delete_folder(self, row: sqlite3.Row, *, recursive: bool, if_match: str | None) -> None:
        if row["id"] == ROOT_ID:
            raise BoxError(403, "access_denied_insufficient_permissions", "The root folder cannot be deleted")
        with self.db.tx() as conn:
            check_if_match(row, if_match)
            tree = [
                r["id"]
                for r in conn.execute(
                    "WITH RECURSIVE tree(id) AS (SELECT ? UNION ALL"
                    " SELECT i.id FROM items i JOIN tree t ON i.parent_id = t.id) SELECT id FROM tree",
                    (row["id"],),
                )
            ]
            if len(tree) > 1 and not recursive:
                raise BoxError(400, "folder_not_empty", "Cannot delete - folder not empty")
            marks = ",".join("?" * len(tree))
            version_ids = [v["id"] for v in conn.execute(f"SELECT id FROM versions WHERE file_id IN ({marks})", tree)]
            conn.execute(f"DELETE FROM versions WHERE file_id IN ({marks})", tree)
            conn.execute(f"DELETE FROM items WHERE id IN ({marks})", tree)
        self.blobs.delete_blobs(version_ids)


def check_if_match(row: sqlite3.Row, if_match: str | None) -> None:
    """Box's optimistic lock: ``If-Match`` must equal the item's current etag (412 otherwise)."""
    if if_match is not None and if_match.strip('"') != str(row["etag"]):
        raise BoxError(
            412, "precondition_failed", "The resource has been modified. Retrieve the resource again and retry"
        )
