"""What collect remembers, in the state bucket (no trigger listens there), per job:

``collect/{job}/``
  ``listing.json``              the previous listing (name → size, mtime): stability check
  ``done/{key}.json``           a file version (:class:`FileIdentity` key) collected: every
                                destination holds a verified copy and the post-action ran
  ``copies/{key}/{dest}.json``  one destination's verified copy of that version: the identity
                                (partner, path, size, mtime), where it is, size, SHA-1, MD5
  ``claims/{key}.json``         who copies that version now (a lease), so overlapping runs wait
  ``ledger/{dest}/{h}.json``    the DeliveryLedger of destinations that cannot hash (SFTP)

Records are written once with ``if_generation_match=0`` where "once" matters (done, copies,
claims); a retry, a rerun or an overlapping run reads them and does nothing twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from google.api_core import exceptions as gexc

from shared import log
from shared.destinations.base import LedgerEntry
from shared.errors import TransientError
from shared.gcp import gcs

if TYPE_CHECKING:  # collect's listing (and paramiko) stays out of who only reads a run's records
    from shared.collect.selection import FileIdentity

logger = log.get_logger(__name__)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def _segment(value: str) -> str:
    return _UNSAFE.sub("-", value)


def prefix(job: str) -> str:
    return f"collect/{job}/"


def _dumps(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


# ---- the previous listing -----------------------------------------------------------------------


def load_listing(bucket: str, job: str) -> dict[str, tuple[int, int]]:
    raw = gcs.read_json(bucket, prefix(job) + "listing.json") or {}
    return {str(k): (int(v[0]), int(v[1])) for k, v in raw.get("files", {}).items()}


def save_listing(bucket: str, job: str, files: dict[str, tuple[int, int]], now: dt.datetime) -> None:
    body = {"listed_at": now.isoformat(), "files": {k: list(v) for k, v in sorted(files.items())}}
    gcs.write(bucket, prefix(job) + "listing.json", _dumps(body), "application/json")


# ---- done files and verified copies -------------------------------------------------------------


@dataclass(frozen=True)
class CopyRecord:
    """A destination's verified copy of one file version."""

    partner: str
    source_path: str
    size: int
    mtime: int
    destination: str
    remote_path: str
    sha1: str
    md5: str
    check: str  # how it was verified: "sha1" (server hash) or "read-back"
    status: str  # what the put did: uploaded, unchanged, new_version
    copied_at: str


def done_keys(bucket: str, job: str) -> set[str]:
    """Keys of every collected file version of the job (one listing of ``done/``)."""
    base = prefix(job) + "done/"
    return {info.name[len(base) :].removesuffix(".json") for info in gcs.list_prefix(bucket, base)}


def is_done(bucket: str, job: str, identity: FileIdentity) -> bool:
    return gcs.stat(bucket, f"{prefix(job)}done/{identity.key}.json") is not None


def mark_done(bucket: str, job: str, identity: FileIdentity, body: dict[str, Any]) -> bool:
    """Record the version as collected; False when it already was (a twin got there first)."""
    record = {**asdict(identity), **body}
    return gcs.write_if_absent(bucket, f"{prefix(job)}done/{identity.key}.json", _dumps(record), "application/json")


def copy_record(bucket: str, job: str, identity: FileIdentity, destination: str) -> CopyRecord | None:
    raw = gcs.read_json(bucket, f"{prefix(job)}copies/{identity.key}/{_segment(destination)}.json")
    return CopyRecord(**raw) if raw else None


def save_copy(bucket: str, job: str, identity: FileIdentity, record: CopyRecord) -> None:
    name = f"{prefix(job)}copies/{identity.key}/{_segment(record.destination)}.json"
    gcs.write_if_absent(bucket, name, _dumps(asdict(record)), "application/json")


def forget_copy(bucket: str, job: str, identity: FileIdentity, destination: str) -> None:
    """Drop a copy record whose copy was deleted (its source changed while it was made)."""
    gcs.delete(bucket, f"{prefix(job)}copies/{identity.key}/{_segment(destination)}.json")


# ---- claims -----------------------------------------------------------------------------------


def claim(bucket: str, job: str, identity: FileIdentity, owner: str, lease: dt.timedelta, now: dt.datetime) -> int:
    """Take the version's claim for ``owner`` (a run id): created, or taken over when it is the
    same owner (a redelivery of its message) or the holder's lease ran out. Returns the claim's
    generation (to release it). TransientError while another run holds a live claim."""
    name = f"{prefix(job)}claims/{identity.key}.json"
    body = _dumps({"owner": owner, "at": now.isoformat()})
    for _ in range(3):
        try:
            return gcs.write(bucket, name, body, "application/json", if_generation_match=0).generation
        except gexc.PreconditionFailed:
            pass
        info = gcs.stat(bucket, name)
        held = gcs.read_json(bucket, name) if info is not None else None
        if info is None or held is None:
            continue
        since = dt.datetime.fromisoformat(str(held.get("at")))
        if held.get("owner") != owner and now - since < lease:
            raise TransientError(
                f"{identity.path} is being copied by run {held.get('owner')} since {since.isoformat()}; "
                "retrying after it finishes or its lease ends"
            )
        try:
            return gcs.write(bucket, name, body, "application/json", if_generation_match=info.generation).generation
        except gexc.PreconditionFailed:
            continue
    raise TransientError(f"{identity.path}: its claim keeps changing; retrying")


def release(bucket: str, job: str, identity: FileIdentity, generation: int) -> None:
    gcs.delete(bucket, f"{prefix(job)}claims/{identity.key}.json", if_generation_match=generation)


# ---- the DeliveryLedger of destinations that cannot hash ----------------------------------------


class StateLedger:
    """``shared.destinations.base.DeliveryLedger`` kept in the state bucket (one object per path)."""

    def __init__(self, bucket: str, job: str, destination: str) -> None:
        self.bucket = bucket
        self.base = f"{prefix(job)}ledger/{_segment(destination)}/"

    def _name(self, path: str) -> str:
        return self.base + hashlib.sha1(path.encode()).hexdigest() + ".json"

    def recall(self, path: str) -> LedgerEntry | None:
        raw = gcs.read_json(self.bucket, self._name(path))
        if not raw or raw.get("path") != path:
            return None
        return LedgerEntry(int(raw["size"]), int(raw["mtime"]), str(raw["sha1"]))

    def remember(self, path: str, entry: LedgerEntry) -> None:
        body = {"path": path, "size": entry.size, "mtime": entry.mtime, "sha1": entry.sha1}
        gcs.write(self.bucket, self._name(path), _dumps(body), "application/json")
