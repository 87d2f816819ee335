"""Files, folders and Shared Drives of the local Drive server: records in memory, bytes on disk.

A record is the Drive v3 file resource as the server knows it (``id``, ``name``, ``mimeType``,
``parents``, ``size``, ``md5Checksum``, ``sha1Checksum``, ``sha256Checksum``, ``appProperties``,
``properties``, ``trashed``, ``driveId``, times) plus ``_owner``: the principal whose My Drive
holds it (None in a Shared Drive). Every principal (user or service account) has its own My
Drive whose root answers to the alias ``root``; Shared Drives are open to every principal (no
membership roles). State lives as long as the process: a restart starts empty.
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FOLDER = "application/vnd.google-apps.folder"


class DriveApiError(Exception):
    """An API error as Drive reports it: HTTP status, reason, message (and optional Retry-After)."""

    def __init__(
        self, status: int, reason: str, message: str, *, domain: str = "global", retry_after: float | None = None
    ):
        super().__init__(message)
        self.status, self.reason, self.message, self.domain, self.retry_after = (
            status,
            reason,
            message,
            domain,
            retry_after,
        )


def not_found(file_id: str) -> DriveApiError:
    return DriveApiError(404, "notFound", f"File not found: {file_id}.", domain="global")


_last = [0.0]


def now_rfc3339() -> str:
    """Now, in Drive's format; strictly increasing within the process (no two items share a
    createdTime, so "the older one" is always well defined, as across Drive's real latencies)."""
    t = max(time.time(), _last[0] + 0.001)
    _last[0] = t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def new_id(prefix: str = "1") -> str:
    return prefix + secrets.token_urlsafe(24).replace("-", "A").replace("_", "B")


@dataclass
class Hashes:
    """The three digests Drive reports, fed as bytes arrive."""

    md5: Any = field(default_factory=hashlib.md5)
    sha1: Any = field(default_factory=hashlib.sha1)
    sha256: Any = field(default_factory=hashlib.sha256)

    def update(self, data: bytes) -> None:
        self.md5.update(data)
        self.sha1.update(data)
        self.sha256.update(data)

    def fields(self) -> dict[str, str]:
        return {
            "md5Checksum": self.md5.hexdigest(),
            "sha1Checksum": self.sha1.hexdigest(),
            "sha256Checksum": self.sha256.hexdigest(),
        }


class Store:
    def __init__(self, data_dir: Path) -> None:
        self.blobs = data_dir / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.records: dict[str, dict[str, Any]] = {}
        self.roots: dict[str, str] = {}  # principal -> My Drive root folder id
        self.drives: dict[str, dict[str, Any]] = {}  # shared drive id -> drive resource
        self.drive_requests: dict[str, str] = {}  # drives.create requestId -> drive id
        self._order = itertools.count()

    # ---- lookup ---------------------------------------------------------------------------

    def root_of(self, principal: str) -> str:
        root = self.roots.get(principal)
        if root is None:
            root = new_id("0A")
            self.roots[principal] = root
            self.records[root] = self._record(root, "My Drive", FOLDER, [], principal, None)
        return root

    def resolve(self, file_id: str, principal: str) -> str:
        return self.root_of(principal) if file_id == "root" else file_id

    def get(self, file_id: str, principal: str, *, all_drives: bool) -> dict[str, Any]:
        """The record ``file_id`` as ``principal`` may see it; 404 as Drive says it otherwise."""
        file_id = self.resolve(file_id, principal)
        record = self.records.get(file_id)
        if record is None or not self.visible(record, principal, all_drives=all_drives):
            raise not_found(file_id)
        return record

    def visible(self, record: dict[str, Any], principal: str, *, all_drives: bool) -> bool:
        if record.get("driveId"):
            return all_drives and record["driveId"] in self.drives
        return record["_owner"] == principal

    def listing(self, principal: str, *, corpora: str, drive_id: str | None, all_drives: bool) -> list[dict[str, Any]]:
        """Every record the corpus holds, in creation order (Drive's order is unspecified)."""
        if corpora == "drive":
            chosen = [r for r in self.records.values() if r.get("driveId") == drive_id]
        elif corpora == "allDrives":
            chosen = [r for r in self.records.values() if self.visible(r, principal, all_drives=True)]
        else:  # user: My Drive (+ shared drives' items only when asked to include them)
            chosen = [r for r in self.records.values() if self.visible(r, principal, all_drives=all_drives)]
        roots = set(self.roots.values()) | set(self.drives)
        return sorted((r for r in chosen if r["id"] not in roots), key=lambda r: r["_order"])

    # ---- changes --------------------------------------------------------------------------

    def _record(
        self, file_id: str, name: str, mime: str, parents: list[str], owner: str | None, drive_id: str | None
    ) -> dict[str, Any]:
        stamp = now_rfc3339()
        record: dict[str, Any] = {
            "kind": "drive#file",
            "id": file_id,
            "name": name,
            "mimeType": mime,
            "parents": parents,
            "trashed": False,
            "explicitlyTrashed": False,
            "createdTime": stamp,
            "modifiedTime": stamp,
            "version": "1",
            "_owner": owner,
            "_order": next(self._order),
        }
        if drive_id:
            record["driveId"] = drive_id
        return record

    def parent_for(self, metadata: dict[str, Any], principal: str, *, all_drives: bool) -> tuple[str, str | None]:
        """The parent folder id a new item goes in, and its Shared Drive id (if any)."""
        parents = metadata.get("parents") or ["root"]
        if not isinstance(parents, list) or len(parents) != 1:
            raise DriveApiError(400, "invalid", "A file must have exactly one parent (parents: [ID]).")
        parent = self.get(str(parents[0]), principal, all_drives=all_drives)
        if parent["mimeType"] != FOLDER:
            raise DriveApiError(400, "invalidParent", f"The parent {parent['id']} is not a folder.")
        return parent["id"], parent.get("driveId")

    def create(self, metadata: dict[str, Any], principal: str, *, all_drives: bool) -> dict[str, Any]:
        parent, drive_id = self.parent_for(metadata, principal, all_drives=all_drives)
        name = metadata.get("name") or "Untitled"
        mime = metadata.get("mimeType") or "application/octet-stream"
        record = self._record(new_id(), str(name), str(mime), [parent], None if drive_id else principal, drive_id)
        for key in ("appProperties", "properties"):
            if metadata.get(key):
                record[key] = checked_properties(key, {k: str(v) for k, v in metadata[key].items() if v is not None})
        if mime != FOLDER:
            record.update(size="0", **Hashes().fields())
            self.blob(record["id"]).write_bytes(b"")
        record["trashed"] = bool(self.records[parent].get("trashed"))  # made inside a trashed folder
        self.records[record["id"]] = record
        return record

    def update(
        self,
        record: dict[str, Any],
        metadata: dict[str, Any],
        add: str | None,
        remove: str | None,
        principal: str,
        *,
        all_drives: bool,
    ) -> dict[str, Any]:
        if "name" in metadata and metadata["name"]:
            record["name"] = str(metadata["name"])
        if "trashed" in metadata:
            record["explicitlyTrashed"] = bool(metadata["trashed"])
        for key in ("appProperties", "properties"):
            if isinstance(metadata.get(key), dict):
                merged = {**record.get(key, {}), **metadata[key]}
                record[key] = checked_properties(key, {k: str(v) for k, v in merged.items() if v is not None})
        if metadata.get("parents"):
            raise DriveApiError(
                403,
                "fieldNotWritable",
                "The resource body includes fields which are not directly "
                "writable: parents (use addParents/removeParents).",
            )
        if add:
            target = self.get(add, principal, all_drives=all_drives)
            if target["mimeType"] != FOLDER:
                raise DriveApiError(400, "invalidParent", f"The parent {add} is not a folder.")
            if target.get("driveId") != record.get("driveId"):
                raise DriveApiError(403, "teamDrivesParentLimit", "Moving between drives is not supported here.")
            parents = [p for p in record["parents"] if p not in (remove or "").split(",")]
            record["parents"] = parents + [target["id"]]
            if len(record["parents"]) > 1:
                raise DriveApiError(403, "cannotAddParent", "A file can only have one parent (pass removeParents).")
        self._retrash(record)
        self.touch(record)
        return record

    def _retrash(self, record: dict[str, Any]) -> None:
        """``trashed`` of the item and everything under it: trashed explicitly or "recursively
        trashed from a parent folder" (Drive's ``explicitlyTrashed``), so trashing a folder in
        the Drive UI hides its whole tree from ``trashed = false`` queries, as Drive does."""
        parent_trashed = any(self.records.get(p, {}).get("trashed") for p in record["parents"])
        record["trashed"] = bool(record.get("explicitlyTrashed")) or parent_trashed
        for child in [r for r in self.records.values() if record["id"] in r["parents"]]:
            self._retrash(child)

    def touch(self, record: dict[str, Any]) -> None:
        record["modifiedTime"] = now_rfc3339()
        record["version"] = str(int(record["version"]) + 1)

    def delete(self, record: dict[str, Any]) -> None:
        """Delete the item and, for a folder, everything under it (as Drive does)."""
        doomed = [record["id"]]
        while doomed:
            current = doomed.pop()
            self.records.pop(current, None)
            self.blob(current).unlink(missing_ok=True)
            doomed.extend(r["id"] for r in list(self.records.values()) if current in r["parents"])

    def blob(self, file_id: str) -> Path:
        return self.blobs / file_id

    def set_content(self, record: dict[str, Any], staged: Path, size: int, hashes: Hashes) -> None:
        staged.replace(self.blob(record["id"]))
        record.update(size=str(size), **hashes.fields())
        self.touch(record)

    # ---- shared drives ----------------------------------------------------------------------

    def create_drive(self, name: str, request_id: str, *, drive_id: str | None = None) -> dict[str, Any]:
        if request_id in self.drive_requests:
            raise DriveApiError(409, "duplicate", f"A shared drive with requestId {request_id} already exists.")
        drive_id = drive_id or new_id("0A")
        drive = {"kind": "drive#drive", "id": drive_id, "name": name, "createdTime": now_rfc3339()}
        self.drives[drive_id] = drive
        self.drive_requests[request_id] = drive_id
        root = self._record(drive_id, name, FOLDER, [], None, drive_id)
        self.records[drive_id] = root
        return drive


MAX_PROPERTY_BYTES = 124  # Drive's documented limit on one property's key + value (UTF-8)
MAX_PROPERTIES = 30  # Drive's documented limit of private (app) or public properties per file


def checked_properties(field: str, props: dict[str, str]) -> dict[str, str]:
    """``props`` if within Drive's documented limits, else 400 naming the property (the
    reason string is this server's; Drive's wording is not documented)."""
    if len(props) > MAX_PROPERTIES:
        raise DriveApiError(400, "invalid", f"{field}: {len(props)} properties, at most {MAX_PROPERTIES} are allowed.")
    for key, value in props.items():
        size = len(key.encode()) + len(value.encode())
        if size > MAX_PROPERTY_BYTES:
            raise DriveApiError(
                400,
                "invalid",
                f"{field}.{key}: key and value are {size} bytes (UTF-8); the limit is {MAX_PROPERTY_BYTES}.",
            )
    return props
