"""The BigQuery side of one table: the target's schema (created, extended, checked) and the staging table.

- The target is created on the first sync from the plan's types. A column new in SQLite is
  added (``ALTER TABLE … ADD COLUMN``); a column whose type changed incompatibly, or a changed
  merge key, raises :class:`SchemaConflict` naming the column and both types: that table stops,
  nothing is written, the others go on. Columns dropped in SQLite stay in BigQuery (NULL from then on).
  Adding columns to an existing table makes the engine read the table whole (SQLite shows an added
  column's DEFAULT on older rows; re-reading them is how BigQuery gets it).
- The staging table is unique to the run (``_offsite_stage_<table>_<run>``), expires after
  ``staging_expiration_minutes`` (so a killed run leaves nothing for long) and is deleted in
  the engine's ``finally``. Rows reach it through the Storage Write API
  (:mod:`shared.ingest.write_api`) or as Parquet files through load jobs (:func:`load_parquet`),
  as ``ingest.load_path`` says (docs/ingest.md).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.errors import PermanentError
from shared.gcp.bq_jobs import QUERY_TIMEOUT_S, api_retry, call, mapped_errors, run_query
from shared.ingest import types
from shared.ingest.plan import DELETED_AT, TablePlan


class SchemaConflict(PermanentError):
    """SQLite's schema no longer fits the BigQuery table (column and both types named)."""


def target_columns(plan: TablePlan) -> list[tuple[str, str]]:
    extra = [(DELETED_AT, "TIMESTAMP")] if plan.deletes == "reconcile" else []
    return [(c.name, c.bq_type) for c in plan.columns] + extra


def existing_schema(client: Any, table_id: str) -> dict[str, str] | None:
    """Column → canonical type of an existing table, or None when there is no table.

    Read from a ``LIMIT 0`` query's result schema (no bytes scanned), not from ``tables.get``:
    bqemulator's table metadata misses columns added by ``ALTER TABLE`` while its queries see them;
    BigQuery answers both the same.
    """
    from google.api_core import exceptions as gexc

    try:
        with mapped_errors(f"reading the schema of {table_id}"):
            result = run_query(client, f"SELECT * FROM `{table_id}` LIMIT 0").result(retry=api_retry(), job_retry=None)
    except PermanentError as exc:
        if isinstance(exc.__cause__, gexc.NotFound) or ": not found:" in str(exc):
            return None
        raise
    return {f.name: types.canonical(f.field_type) for f in result.schema}


def check_key(plan: TablePlan, stored: tuple[str, ...] | None) -> None:
    if plan.mode == "merge" and stored is not None and stored != plan.key:
        raise SchemaConflict(
            f"table {plan.name}: the merge key changed from ({', '.join(stored)}) to ({', '.join(plan.key)}); "
            f"the table is not synced until it is rebuilt (`offsite ingest reset {plan.name}` after dropping it)"
        )


def conflicts(plan: TablePlan, existing: dict[str, str]) -> list[str]:
    """One message per column whose BigQuery type cannot take the type SQLite now gives it."""
    out = []
    for name, bq_type in target_columns(plan):
        have = existing.get(name)
        if have is not None and not types.compatible(have, bq_type):
            col = next((c for c in plan.columns if c.name == name), None)
            declared = f" (SQLite declares {col.declared or 'no type'!r})" if col else ""
            out.append(f"column {name!r} is {have} in BigQuery but {bq_type} from SQLite{declared}")
    return out


def ensure_target(
    client: Any,
    table_id: str,
    plan: TablePlan,
    *,
    create: bool = True,
    before_adding: Callable[[list[str]], None] | None = None,
) -> list[str]:
    """Create the target or add its new columns; returns the columns added. SchemaConflict on an incompatible
    change. ``before_adding`` is called with the new columns of an existing table before they are added."""
    from google.cloud import bigquery

    existing = existing_schema(client, table_id)
    if existing is None:
        if create:
            schema = [bigquery.SchemaField(n, t) for n, t in target_columns(plan)]
            call(
                lambda: client.create_table(bigquery.Table(table_id, schema=schema), retry=api_retry()),
                f"creating {table_id}",
            )
        return [n for n, _ in target_columns(plan)]
    problems = conflicts(plan, existing)
    if problems:
        raise SchemaConflict(f"table {plan.name}: " + "; ".join(problems) + "; this table is stopped, others go on")
    added = [(n, t) for n, t in target_columns(plan) if n not in existing]
    if added and create:
        if before_adding is not None:
            before_adding([n for n, _ in added])
        for name, bq_type in added:  # one per statement: the local BigQuery takes one ALTER command at a time
            with mapped_errors(f"adding column {name} to {table_id}"):
                sql = f"ALTER TABLE `{table_id}` ADD COLUMN IF NOT EXISTS `{name}` {bq_type}"
                run_query(client, sql)
    return [n for n, _ in added]


def staging_id(project: str, dataset: str, table: str, run_id: str) -> str:
    return f"{project}.{dataset}._offsite_stage_{table}_{run_id}"


def create_staging(client: Any, staging: str, plan: TablePlan, expiration_minutes: int) -> None:
    from google.cloud import bigquery

    table = bigquery.Table(staging, schema=staging_schema(plan))
    table.expires = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=expiration_minutes)
    call(lambda: client.create_table(table, retry=api_retry()), f"creating staging table {staging}")


def staging_schema(plan: TablePlan) -> list[Any]:
    from google.cloud import bigquery

    return [bigquery.SchemaField(c.name, types.staging_type(c.bq_type)) for c in plan.columns]


def load_parquet(client: Any, staging: str, plan: TablePlan, path: Path) -> None:
    """Append one Parquet file to the staging table with a load job (waits for it)."""
    from google.cloud import bigquery

    config = bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.PARQUET,
        write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
        schema=staging_schema(plan),
    )
    with mapped_errors(f"loading {path.name} into {staging}"), path.open("rb") as handle:
        job = client.load_table_from_file(handle, staging, job_config=config, size=None)
        job.result(timeout=QUERY_TIMEOUT_S, retry=api_retry())


def drop_staging(client: Any, staging: str) -> None:
    call(
        lambda: client.delete_table(staging, not_found_ok=True, retry=api_retry()), f"deleting staging table {staging}"
    )
