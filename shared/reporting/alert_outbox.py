"""Alerts waiting to be sent: nothing that needs a person is dropped by the rate limit.

Each alertable result becomes one entry of a *group* — its run (every table, destination and
status of that run go out in one message), or the digest of rejected requests that belong to
no run. An entry's key is (table, destination, status) within the run, so a result reported
twice (receipt and sweep) is one line, not two; a source without a table or export (a mirrored
bucket, a collect job) adds a hash of the failure itself, so each failed object is its own line.
Entries stay until a message carrying them was posted; the verify sweep flushes what the rate
limit held back.

:class:`GcsOutbox` keeps entries in ``gs://BUCKET/alerts/pending/{group}/{key}.json`` (shared
by every instance, deleted with a generation match so a newer entry is never lost);
:class:`MemoryOutbox` is the per-process fallback when GCS is out of reach, and what unit
tests use.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from shared.messages import VerifyResult

PENDING_PREFIX = "alerts/pending/"
REJECTED_GROUP = "rejected-requests"
_MAX_KEY = 200  # characters of a group or key (part of a GCS object name)


@dataclass(frozen=True)
class Pending:
    """One entry of a group, and the version of it that was read (to delete exactly that)."""

    key: str
    result: VerifyResult
    version: int = 0


class Outbox(Protocol):
    def add(self, group: str, key: str, result: VerifyResult) -> None: ...

    def pending(self, group: str) -> list[Pending]: ...

    def remove(self, group: str, sent: list[Pending]) -> None: ...

    def groups(self) -> list[str]: ...


def group_of(result: VerifyResult) -> str:
    """The run, or the rejected-requests digest for results that belong to no run."""
    return _safe(result.run_id) if result.run_id else REJECTED_GROUP


def key_of(result: VerifyResult) -> str:
    """One line per (table, destination, status) of a run; one per message for the digest.

    A source without a table or export (a mirrored bucket, a collect job) has many objects per
    run that fail apart: its key adds a hash of what the failure says, so a queued failure is
    never overwritten by another one, while the same failure reported twice stays one line."""
    if not result.run_id:
        basis = result.message_id or hashlib.sha1((result.reason or "").encode()).hexdigest()[:16]
        return _safe(f"{result.status}-{basis}")
    source = result.source
    table = (source.table or source.export) if source else None
    head = f"{table or '-'}-{result.destination or '-'}-{result.status}"
    if table is not None:
        return _safe(head)
    return _safe(head)[: _MAX_KEY - 17] + "-" + _failure_digest(result)


def _failure_digest(result: VerifyResult) -> str:
    """16 hex digits identifying one failure: its stage, date, reason and the files it names."""
    what = [result.stage, result.date, result.reason, result.missing, result.extra]
    what += [result.size_differs, result.hash_differs]
    return hashlib.sha1(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:_MAX_KEY]


class MemoryOutbox:
    def __init__(self) -> None:
        self._groups: dict[str, dict[str, Pending]] = {}
        self._lock = threading.Lock()

    def add(self, group: str, key: str, result: VerifyResult) -> None:
        with self._lock:
            entries = self._groups.setdefault(group, {})
            version = entries[key].version + 1 if key in entries else 1
            entries[key] = Pending(key, result, version)

    def pending(self, group: str) -> list[Pending]:
        with self._lock:
            return sorted(self._groups.get(group, {}).values(), key=lambda p: p.key)

    def remove(self, group: str, sent: list[Pending]) -> None:
        with self._lock:
            entries = self._groups.get(group, {})
            for item in sent:
                if entries.get(item.key) == item:  # not replaced by a newer result meanwhile
                    del entries[item.key]
            if not entries:
                self._groups.pop(group, None)

    def groups(self) -> list[str]:
        with self._lock:
            return sorted(self._groups)


class GcsOutbox:
    def __init__(self, bucket: str) -> None:
        self.bucket = bucket

    def add(self, group: str, key: str, result: VerifyResult) -> None:
        from shared.gcp import gcs

        gcs.write(self.bucket, f"{PENDING_PREFIX}{group}/{key}.json", result.to_json(), "application/json")

    def pending(self, group: str) -> list[Pending]:
        from shared.gcp import gcs

        found = []
        for info in gcs.list_prefix(self.bucket, f"{PENDING_PREFIX}{group}/"):
            data = gcs.read_bytes(self.bucket, info.name)
            if data is None:
                continue
            key = info.name.rsplit("/", 1)[1].removesuffix(".json")
            found.append(Pending(key, VerifyResult.from_json(data), info.generation))
        return found

    def remove(self, group: str, sent: list[Pending]) -> None:
        from shared.gcp import gcs

        for item in sent:
            gcs.delete(self.bucket, f"{PENDING_PREFIX}{group}/{item.key}.json", if_generation_match=item.version)

    def groups(self) -> list[str]:
        from shared.gcp import gcs

        names = {o.name[len(PENDING_PREFIX) :].split("/", 1)[0] for o in gcs.list_prefix(self.bucket, PENDING_PREFIX)}
        return sorted(names)


def as_json(entries: list[Pending]) -> list[dict[str, Any]]:
    """The entries as plain data (logs, tests)."""
    return [json.loads(p.result.to_json()) for p in entries]
