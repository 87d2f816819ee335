"""Verify's state, kept as small GCS objects next to the run (dlt's "state lives in the destination").

Every marker is created with ``if_generation_match=0``: of many concurrent verify instances
exactly one creates it, and that one acts (publishes the result, starts the heal). Under the
run folder ``{prefix}_verify/{destination}/``:

- ``result-{k}.json``: the one ``in_sync``/``mismatch`` result of heal round ``k`` (its body);
- ``incomplete-{k}.json`` / ``failed-{k}.json``: the sweep's ``incomplete``/``failed`` report for round ``k``;
- ``heal-{k}.json``: heal attempt ``k`` was started (the files re-delivered, when, why);
- ``heal-{k}.done/{file}``: the re-delivery of ``file`` in attempt ``k`` was receipted;
- ``recheck-{YYYYMMDD}.json``: the daily re-verify of an ``in_sync`` result ran that day (its outcome);
- ``recheck-mismatch-{k}.json``: a re-verify found round ``k``'s in_sync result no longer true (reported once);
- ``failed-{stage}.json``: a stage's permanent failure at this destination was reported (once);
- ``pruning.json`` / ``pruned.json``: retention is removing / removed this run folder at the
  destination (shared.retention.prune; the recheck leaves such a run alone);

and ``{prefix}_verify/rejected.json`` when the run's manifest was rejected (reported once).
Round ``k`` is the number of heal attempts started; round 0 is the first delivery.
Markers are control files (the upload functions ignore names in sub-folders of a run).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from google.api_core import exceptions as gexc

from shared.gcp import clients, gcs

VERIFY_FOLDER = "_verify"
PRUNING = "pruning.json"  # written before retention removes the run folder at the destination
PRUNED = "pruned.json"  # the one `pruned` result of the run folder at the destination (its body)
_NAME = re.compile(r"^(result|incomplete|heal)-(\d+)\.json$")
_DONE = re.compile(r"^heal-(\d+)\.done/(.+)$")


def folder(prefix: str, destination: str) -> str:
    return f"{prefix}{VERIFY_FOLDER}/{destination}/"


class Kind(StrEnum):
    """The kinds of ``{kind}-{key}.json`` marker in a destination's marker folder."""

    RESULT = "result"  # key: heal round; the one in_sync/mismatch result of that round
    INCOMPLETE = "incomplete"  # key: heal round; the sweep's `incomplete` report
    FAILED = "failed"  # key: heal round (the sweep's `failed` report) or a stage (shared.stages.failures)
    HEAL = "heal"  # key: heal attempt; the attempt was started
    RECHECK = "recheck"  # key: YYYYMMDD (UTC); the daily re-verify of an in_sync result ran (shared.verify.recheck)
    RECHECK_MISMATCH = "recheck-mismatch"  # key: heal round whose in_sync result a recheck found no longer true


def marker(prefix: str, destination: str, kind: Kind, key: int | str) -> str:
    """The name of the ``kind`` marker ``key`` of (run folder ``prefix``, ``destination``)."""
    return f"{folder(prefix, destination)}{kind}-{key}.json"


def done_name(prefix: str, destination: str, attempt: int, file_name: str) -> str:
    return f"{folder(prefix, destination)}heal-{attempt}.done/{file_name}"


def rejected_name(prefix: str) -> str:
    return f"{prefix}{VERIFY_FOLDER}/rejected.json"


@dataclass(frozen=True)
class VerifyState:
    """What the markers of one (run folder, destination) say."""

    heal_attempts: int = 0  # heal rounds started; the current round
    results: frozenset[int] = frozenset()
    incompletes: frozenset[int] = frozenset()
    done: dict[int, frozenset[str]] = field(default_factory=dict)

    @property
    def round(self) -> int:
        return self.heal_attempts

    @property
    def reported(self) -> bool:
        """The current round has its in_sync/mismatch result."""
        return self.round in self.results

    @property
    def ever_reported(self) -> bool:
        return bool(self.results)


def read_state(bucket: str, prefix: str, destination: str) -> VerifyState:
    """One listing of the destination's marker folder."""
    base = folder(prefix, destination)
    return state_of(info.name[len(base) :] for info in gcs.list_prefix(bucket, base))


def state_of(names: Iterable[str]) -> VerifyState:
    """The state that marker names (relative to ``{prefix}_verify/{destination}/``) say."""
    heals: set[int] = set()
    results: set[int] = set()
    incompletes: set[int] = set()
    done: dict[int, set[str]] = {}
    for rest in names:
        if m := _NAME.match(rest):
            {"result": results, "incomplete": incompletes, "heal": heals}[m.group(1)].add(int(m.group(2)))
        elif m := _DONE.match(rest):
            done.setdefault(int(m.group(1)), set()).add(m.group(2))
    return VerifyState(
        heal_attempts=max(heals, default=0),
        results=frozenset(results),
        incompletes=frozenset(incompletes),
        done={k: frozenset(v) for k, v in done.items()},
    )


def claim(bucket: str, name: str, body: dict[str, Any]) -> bool:
    """Create marker ``name`` with ``body``; True when this call created it, False when it existed."""
    return gcs.write_if_absent(bucket, name, json.dumps(body, sort_keys=True).encode(), "application/json")


def read(bucket: str, name: str) -> dict[str, Any] | None:
    body = gcs.read_json(bucket, name)
    return body if isinstance(body, dict) else None


def release(bucket: str, name: str) -> None:
    """Delete a marker this instance created but could not act on (so a retry can claim it again)."""
    with gcs.mapped_errors(f"deleting marker {gcs.uri(bucket, name)}"):
        try:
            clients.storage_client().bucket(bucket).blob(name).delete()
        except gexc.NotFound:
            pass


def mark_done(bucket: str, prefix: str, destination: str, attempt: int, file_name: str, body: dict[str, Any]) -> None:
    """Record that the re-delivery of ``file_name`` in heal ``attempt`` was receipted (idempotent)."""
    claim(bucket, done_name(prefix, destination, attempt, file_name), body)
