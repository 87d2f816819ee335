"""The sync state, kept in BigQuery table ``_offsite_sync_state`` next to the synced tables.

One row per table: the watermark (the greatest cursor value applied, as JSON), the key the
target was built with, a ``version`` bumped by every apply and every reset, the last run's
counts and error, and the lease. The watermark is written only inside the apply transaction
(:mod:`shared.ingest.apply`), so it can never run ahead of the data or fall behind it; a lost
worker loses nothing because nothing lives only on the host.

Lease: ``acquire`` is one conditional UPDATE (``lease_owner`` empty or expired), which
BigQuery runs serially with other DML on the table, so of two overlapping runs of one table
exactly one gets it; runs of different tables touch different rows and never wait for each
other's lease. A run renews its lease while it works (:class:`LeaseKeeper`), so a sync longer
than ``lease_s`` keeps it; one that lost it anyway stops with :class:`LeaseLost`. The apply
transaction checks the lease and the version again, so a run whose lease was taken over (or
whose table was reset meanwhile) rolls back instead of applying.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from typing import Any

from shared.errors import PermanentError
from shared.gcp.bq_jobs import api_retry, call, mapped_errors, run_query

STATE_TABLE = "_offsite_sync_state"
STATE_SCHEMA = (
    ("table_name", "STRING"),
    ("watermark", "STRING"),
    ("key_columns", "STRING"),
    ("version", "INT64"),
    ("last_run", "STRING"),
    ("last_sync_at", "TIMESTAMP"),
    ("last_full_sync_at", "TIMESTAMP"),
    ("last_rows_read", "INT64"),
    ("last_rows_merged", "INT64"),
    ("rows_total", "INT64"),
    ("last_error", "STRING"),
    ("lease_owner", "STRING"),
    ("lease_until", "TIMESTAMP"),
)


@dataclass(frozen=True)
class TableState:
    table: str
    watermark: Any = None
    key_columns: tuple[str, ...] | None = None
    version: int = 0
    last_sync_at: dt.datetime | None = None
    last_full_sync_at: dt.datetime | None = None
    last_rows_read: int | None = None
    last_rows_merged: int | None = None
    rows_total: int = 0
    last_error: str | None = None
    lease_owner: str | None = None
    lease_until: dt.datetime | None = None

    @classmethod
    def from_row(cls, row: Any) -> TableState:
        keys = row["key_columns"]
        return cls(
            table=row["table_name"],
            watermark=None if row["watermark"] is None else json.loads(row["watermark"]),
            key_columns=None if keys is None else tuple(k for k in keys.split(",") if k),
            version=row["version"] or 0,
            last_sync_at=row["last_sync_at"],
            last_full_sync_at=row["last_full_sync_at"],
            last_rows_read=row["last_rows_read"],
            last_rows_merged=row["last_rows_merged"],
            rows_total=row["rows_total"] or 0,
            last_error=row["last_error"],
            lease_owner=row["lease_owner"],
            lease_until=row["lease_until"],
        )

    def status_row(self, now: dt.datetime) -> dict[str, Any]:
        """The table's state as ``offsite ingest status --json`` and ``GET /ingest`` show it."""
        return {
            "table": self.table,
            "last_sync_at": self.last_sync_at.isoformat() if self.last_sync_at else None,
            "last_full_sync_at": self.last_full_sync_at.isoformat() if self.last_full_sync_at else None,
            "watermark": self.watermark,
            "rows_total": self.rows_total,
            "last_rows_read": self.last_rows_read,
            "lag_s": round((now - self.last_sync_at).total_seconds()) if self.last_sync_at else None,
            "last_error": self.last_error,
            "lease_owner": self.lease_owner,
        }


def encode_watermark(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


class SyncState:
    """Reads and writes ``<project>.<dataset>._offsite_sync_state`` through a BigQuery client."""

    def __init__(self, client: Any, project: str, dataset: str) -> None:
        self.client, self.project, self.dataset = client, project, dataset
        self.ref = f"`{project}.{dataset}.{STATE_TABLE}`"

    def query(self, sql: str, what: str, **params: Any) -> Any:
        """One statement with named parameters; returns the finished job."""
        from google.cloud import bigquery

        kinds = {str: "STRING", int: "INT64", dt.datetime: "TIMESTAMP"}
        config = bigquery.QueryJobConfig(
            query_parameters=[
                bigquery.ScalarQueryParameter(name, kinds[type(v)] if v is not None else "STRING", v)
                for name, v in params.items()
            ]
        )

        with mapped_errors(what):  # not retried: a DML statement that did apply must not run twice
            return run_query(self.client, sql, job_config=config)

    def ensure(self) -> None:
        """Create the dataset and the state table when missing."""
        from google.api_core import exceptions as gexc
        from google.cloud import bigquery

        def dataset() -> None:  # looked up first: Terraform creates it in the cloud, without datasets.create for us
            try:
                self.client.get_dataset(f"{self.project}.{self.dataset}", retry=api_retry())
            except gexc.NotFound:
                self.client.create_dataset(f"{self.project}.{self.dataset}", exists_ok=True, retry=api_retry())

        call(dataset, f"creating dataset {self.dataset}")
        table = bigquery.Table(
            f"{self.project}.{self.dataset}.{STATE_TABLE}",
            schema=[bigquery.SchemaField(name, kind) for name, kind in STATE_SCHEMA],
        )
        call(lambda: self.client.create_table(table, exists_ok=True, retry=api_retry()), f"creating {STATE_TABLE}")

    def ensure_row(self, table: str) -> None:
        self.query(
            f"MERGE {self.ref} T USING (SELECT @t AS table_name) S ON T.table_name = S.table_name "
            "WHEN NOT MATCHED THEN INSERT (table_name, version, rows_total) VALUES (S.table_name, 0, 0)",
            f"adding {table} to {STATE_TABLE}",
            t=table,
        )

    def acquire(self, table: str, run_id: str, lease_s: int) -> bool:
        """Take the table's lease for ``lease_s`` seconds; False when another run holds it."""
        self.ensure_row(table)
        job = self.query(
            f"UPDATE {self.ref} SET lease_owner = @run, "
            "lease_until = TIMESTAMP_ADD(CURRENT_TIMESTAMP(), INTERVAL @s SECOND) "
            "WHERE table_name = @t AND (lease_owner IS NULL OR lease_until < CURRENT_TIMESTAMP())",
            f"taking the lease of {table}",
            t=table,
            run=run_id,
            s=lease_s,
        )
        return bool(job.num_dml_affected_rows == 1)

    def renew(self, table: str, run_id: str, lease_s: int) -> bool:
        """Extend this run's lease by ``lease_s`` from now; False when it is no longer this run's."""
        job = self.query(
            f"UPDATE {self.ref} SET lease_until = TIMESTAMP_ADD(CURRENT_TIMESTAMP(), INTERVAL @s SECOND) "
            "WHERE table_name = @t AND lease_owner = @run",
            f"renewing the lease of {table}",
            t=table,
            run=run_id,
            s=lease_s,
        )
        return bool(job.num_dml_affected_rows == 1)

    def forget_watermark(self, table: str, run_id: str) -> None:
        """Clear the watermark under this run's lease (the version stays): every row is read again until
        a run applies them. Used before columns are added to the target, to fill them on older rows."""
        job = self.query(
            f"UPDATE {self.ref} SET watermark = NULL WHERE table_name = @t AND lease_owner = @run",
            f"clearing the watermark of {table}",
            t=table,
            run=run_id,
        )
        if job.num_dml_affected_rows != 1:
            raise LeaseLost(f"table {table}: another run took over the lease; stopped before changing its schema")

    def release(self, table: str, run_id: str) -> None:
        self.query(
            f"UPDATE {self.ref} SET lease_owner = NULL, lease_until = NULL WHERE table_name = @t AND lease_owner = @run",
            f"releasing the lease of {table}",
            t=table,
            run=run_id,
        )

    def record(self, table: str, run_id: str, *, rows_read: int, error: str | None) -> None:
        """A run that applied nothing (empty, failed): its counts and error; the watermark stays."""
        self.query(
            f"UPDATE {self.ref} SET last_run = @run, last_sync_at = CURRENT_TIMESTAMP(), last_rows_read = @n, "
            "last_rows_merged = 0, last_error = @err WHERE table_name = @t AND lease_owner = @run",
            f"recording the run of {table}",
            t=table,
            run=run_id,
            n=rows_read,
            err=error,
        )

    def get(self, table: str) -> TableState:
        job = self.query(f"SELECT * FROM {self.ref} WHERE table_name = @t", f"reading the state of {table}", t=table)
        rows = list(job.result(retry=api_retry(), job_retry=None))
        return TableState.from_row(rows[0]) if rows else TableState(table)

    def all(self) -> list[TableState]:
        """Every table's state, by table name; none when nothing was synced yet (no state table,
        or no dataset). A plain table read (``tabledata.list``), no query job: a reader needs no
        ``bigquery.jobs.create`` (the HTTP trigger's ``GET /ingest``, ``offsite ingest status``)."""
        from google.api_core import exceptions as gexc

        def rows() -> list[Any]:
            try:
                return list(self.client.list_rows(f"{self.project}.{self.dataset}.{STATE_TABLE}", retry=api_retry()))
            except gexc.NotFound:
                return []

        states = [TableState.from_row(r) for r in call(rows, f"reading {self.dataset}.{STATE_TABLE}")]
        return sorted(states, key=lambda s: s.table)

    def reset(self, table: str) -> bool:
        """Forget the watermark and key: the next run re-syncs the whole table. False if unknown."""
        job = self.query(
            f"UPDATE {self.ref} SET watermark = NULL, key_columns = NULL, version = version + 1, last_error = NULL "
            "WHERE table_name = @t",
            f"resetting {table}",
            t=table,
        )
        return bool(job.num_dml_affected_rows == 1)


class LeaseLost(PermanentError):
    """Another run took the table's lease over (this run outlived ``lease_s`` between renewals)."""


class LeaseKeeper:
    """Keeps a run's lease on a table alive while it reads, stages and applies.

    :meth:`keep` renews the lease once a third of ``lease_s`` has passed since it was taken or last
    renewed (one UPDATE, not one per batch), so it never runs out while the run is working;
    :class:`LeaseLost` when another run took it over meanwhile: that run now syncs the table.
    """

    def __init__(self, state: SyncState, table: str, run_id: str, lease_s: int) -> None:
        self.state, self.table, self.run_id, self.lease_s = state, table, run_id, lease_s
        self.renewed = time.monotonic()  # the lease was just taken

    def keep(self) -> None:
        if time.monotonic() - self.renewed < self.lease_s / 3:
            return
        started = time.monotonic()
        if not self.state.renew(self.table, self.run_id, self.lease_s):
            raise LeaseLost(
                f"table {self.table}: another run took over the lease (lease_s = {self.lease_s} s ran out "
                "before this run renewed it); stopped, nothing applied"
            )
        self.renewed = started
