"""The schema an export job started with, which the manifest must describe.

An export is often finished by another invocation than the one that started it (its completion
event, the finalize sweep), minutes or hours later. Reading the table's schema then describes the
table as it is then: a column added meanwhile (an `ALTER TABLE … ADD COLUMN` of a dbt run) would
be in the manifest but not in the files, whose snapshot is the job's start. So the schema read
just before the job is inserted is kept under its digest (in the run's state, :class:`SchemaStore`)
and the job carries the digest as a label: the finisher takes the schema the job names.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol

from shared.errors import PermanentError

LABEL = "offsite_schema"  # BigQuery label: lowercase letters, digits, '_' and '-', values ≤ 63 characters


class SchemaStore(Protocol):
    """Where the schemas jobs started with are kept, by digest."""

    def save(self, digest: str, schema: list[dict[str, Any]]) -> None: ...
    def load(self, digest: str) -> list[dict[str, Any]] | None: ...


def digest(schema: list[dict[str, Any]]) -> str:
    """A schema's identity: SHA-1 of its canonical JSON (40 hex digits, a valid label value)."""
    return hashlib.sha1(json.dumps(schema, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def labels(schema: list[dict[str, Any]], store: SchemaStore | None) -> dict[str, str]:
    """The labels of a job started now with ``schema``, which ``store`` keeps first (before the
    job exists, so any job that names a digest has its schema kept)."""
    if store is None:
        return {}
    name = digest(schema)
    store.save(name, schema)
    return {LABEL: name}


def of_job(job: Any, current: list[dict[str, Any]], store: SchemaStore | None, label: str) -> list[dict[str, Any]]:
    """The schema ``job`` started with: ``current`` when the job names none (started without a
    store) or names it; else the kept one. PermanentError when the schema changed since and the one
    the job started with is not kept: no schema that describes its files is known."""
    wanted = (getattr(job, "labels", None) or {}).get(LABEL)
    if wanted is None or wanted == digest(current):
        return current
    kept = store.load(wanted) if store is not None else None
    if kept is not None and digest(kept) == wanted:
        return kept
    raise PermanentError(
        f"the schema of {label} changed while BigQuery job {job.job_id} exported it, and the schema it "
        f"started with (digest {wanted}) is not kept; run the export again"
    )
