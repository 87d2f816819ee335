"""Configuration of the SQLite → BigQuery ingest (issue 15; seeds 001 and 002).

``ingest:`` in offsite.yaml names the SQLite file, the BigQuery dataset, which tables are
synced (globs over the SQLite schema) and, per table, how: ``mode`` append or merge, the
(composite) primary ``key``, the ``cursor`` column, a ``lag_s`` hold-back for late commits,
columns left out or hashed (keyed HMAC-SHA-256, ``hash_key`` from a secret) and the delete
policy. Tables without an entry get defaults derived from their SQLite schema
(:mod:`shared.ingest.plan`).
"""

from __future__ import annotations

import fnmatch
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from shared.config.secrets import Secret
from shared.config.types import NAME_RE, Cron, DatasetId, Model, Names, TimeZone, between, each_matching
from shared.validation import Problem, Problems

IngestMode = Literal["append", "merge"]
DeletePolicy = Literal["ignore", "tombstone", "reconcile"]
LoadPath = Literal["write_api", "load_job", "auto"]
DEFAULT_TIMESTAMP_SUFFIXES = ("_timestamp", "_at", "_start", "_end")


ColumnNames = Annotated[Names, each_matching(NAME_RE, "is not a valid column name (letters, digits, underscores)")]


class IngestTable(Model):
    """How one SQLite table is synced. Every field is optional: unset ones come from the schema."""

    mode: IngestMode | None = Field(
        None, description="append (insert-only) or merge (upsert by key). Default: merge if the table has a key."
    )
    key: ColumnNames = Field(
        (), description="Primary key columns for merge (composite allowed). Default: the SQLite one."
    )
    cursor: str | None = Field(
        None,
        description="Column that grows with every insert (autoincrement id) or update (updated_at). "
        "Default: 'updated_at' if present, else a single INTEGER primary key. Without one, merge "
        "tables are read whole on every run.",
    )
    lag_s: Annotated[int, between(0)] = Field(
        0,
        description="Hold-back for late commits on a timestamp cursor: rows whose cursor is newer than "
        "now - lag_s wait for the next run.",
    )
    include_columns: ColumnNames = Field((), description="Columns synced; empty means all.")
    exclude_columns: ColumnNames = Field((), description="Columns never synced.")
    hashed_columns: ColumnNames = Field(
        (), description="Columns replaced by HMAC-SHA-256(hash_key, value) as hex before they leave the host."
    )
    json_columns: ColumnNames = Field((), description="TEXT columns loaded as BigQuery JSON.")
    types: dict[str, str] = Field(
        default_factory=dict, description="BigQuery type per column, overriding the mapping (e.g. {paid: BOOL})."
    )
    deletes: DeletePolicy = Field(
        "ignore",
        description="ignore (rows deleted in SQLite stay in BigQuery), tombstone (the tombstone column marks "
        "deleted rows; it is synced like any column) or reconcile (a full sync stamps "
        "_offsite_deleted_at on rows missing from SQLite; merge tables only).",
    )
    tombstone_column: str | None = Field(None, description="With deletes: tombstone, the soft-delete column.")

    @model_validator(mode="after")
    def _consistent(self) -> IngestTable:
        problems = Problems()
        if self.cursor is not None and not NAME_RE.match(self.cursor):
            problems.add(("cursor",), f"{self.cursor!r} is not a valid column name")
        for name in (*self.key, *([self.cursor] if self.cursor else [])):
            if name in self.exclude_columns:
                problems.add(("exclude_columns",), f"{name!r} is a key or cursor column and cannot be excluded")
            if name in self.hashed_columns:
                problems.add(("hashed_columns",), f"{name!r} is a key or cursor column and cannot be hashed")
        if self.mode == "append" and self.deletes == "reconcile":
            problems.add(("deletes",), "'reconcile' needs mode 'merge' (an append table has no key to compare)")
        if self.deletes == "tombstone" and not self.tombstone_column:
            problems.add(("tombstone_column",), "required when deletes is 'tombstone'")
        problems.raise_any()
        return self


class IngestSettings(Model):
    sqlite_path: str = Field(description="The SQLite database file (on the app host, or a local copy of a snapshot).")
    dataset: DatasetId = Field(description="BigQuery dataset the tables land in (created if missing).")
    include: Names = Field(("*",), description="Table name globs synced (fnmatch), e.g. ['*'].")
    exclude: Names = Field((), description="Table name globs never synced; sqlite_* tables never are.")
    tables: dict[str, IngestTable] = Field(default_factory=dict, description="Per-table settings by table name.")
    hash_key: Secret | None = Field(None, description="HMAC key for hashed_columns (env:, file:, sm:// or literal).")
    batch_rows: Annotated[int, between(1)] = Field(
        10_000, description="Rows read from SQLite and converted at once (bounds memory)."
    )
    rows_per_load: Annotated[int, between(1)] = Field(
        1_000_000, description="Rows per Parquet file loaded into the staging table (load_path load_job)."
    )
    load_path: LoadPath = Field(
        "auto",
        description="How rows reach the run's staging table: write_api (BigQuery Storage Write API, one pending "
        "stream committed once), load_job (Parquet files through load jobs) or auto (write_api; load_job when "
        "the library is missing or the endpoint does not serve the Storage Write API).",
    )
    lease_s: Annotated[int, between(1)] = Field(
        900, description="How long a run holds a table's lease; a crashed run's lease expires after this."
    )
    staging_expiration_minutes: Annotated[int, between(1)] = Field(
        120, description="Staging tables expire after this long even if a crash skips their deletion."
    )
    timestamp_suffixes: Names = Field(
        DEFAULT_TIMESTAMP_SUFFIXES,
        description="Columns whose name ends so are TIMESTAMP (the name rule of the SQLite sync offsite replaces); empty turns the rule off.",
    )
    snapshot_uri: str | None = Field(
        None, description="gs://BUCKET/PATH of the snapshot that `offsite ingest push` uploads and functions read."
    )
    schedule: Cron | None = Field("*/15 * * * *", description="Cron of the incremental sync (Cloud Scheduler).")
    full_schedule: Cron | None = Field("30 2 * * *", description="Cron of the daily full sync (Cloud Scheduler).")
    time_zone: TimeZone = Field("UTC", description="Time zone of both schedules (an IANA name, e.g. Asia/Kolkata).")

    @field_validator("snapshot_uri")
    @classmethod
    def _snapshot(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("gs://") or "/" not in value[5:]):
            raise Problem(f"{value!r} is not of the form gs://BUCKET/PATH")
        return value

    @model_validator(mode="after")
    def _hash_key_when_hashing(self) -> IngestSettings:
        problems = Problems()
        for name, table in self.tables.items():
            if not NAME_RE.match(name):
                problems.add(("tables", name), f"{name!r} is not a valid table name")
            if table.hashed_columns and self.hash_key is None:
                problems.add(("hash_key",), f"required: tables.{name}.hashed_columns is set")
        problems.raise_any()
        return self

    def selects(self, table: str) -> bool:
        """Whether a SQLite table is synced: matched by ``include``, not by ``exclude``, not sqlite_*."""
        if table.startswith("sqlite_"):
            return False
        return any(fnmatch.fnmatchcase(table, g) for g in self.include) and not any(
            fnmatch.fnmatchcase(table, g) for g in self.exclude
        )

    def table(self, name: str) -> IngestTable:
        return self.tables.get(name) or IngestTable()
