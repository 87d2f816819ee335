"""The one transaction that applies a staged batch: MERGE or INSERT, then the watermark.

::

    BEGIN TRANSACTION;
    MERGE target USING staging ON key … | INSERT INTO target … WHERE NOT EXISTS (same key)
      (an append table read whole is MERGEd as well);
    UPDATE _offsite_sync_state SET watermark = …, version = version + 1, …
      WHERE table_name = … AND lease_owner = <run> AND version = <version read at start>;
    SELECT ERROR(…) FROM (… the row now carries <run> and version + 1 …) WHERE n = 0;
    COMMIT TRANSACTION;

Either everything lands or nothing does: a crash between any two statements (or a lease that
expired, or a reset meanwhile) rolls the MERGE back with the watermark. Even without the
transaction the sequence is idempotent: MERGE is idempotent by key and the INSERT of an append
table skips rows whose key (or unique cursor) is already there, so re-applying the same
staged rows after a crash adds no duplicate, and the watermark only moves after the rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.ingest import sql
from shared.ingest.plan import DELETED_AT, TablePlan
from shared.ingest.state import STATE_TABLE


@dataclass(frozen=True)
class Apply:
    """What one apply writes besides the rows."""

    run_id: str
    version: int  # the state row's version when the run started
    watermark: str | None  # JSON of the new watermark
    rows_read: int
    rows_merged: int
    full: bool
    lease_s: int = 0  # the lease's length, named when the check finds the lease taken over


def _value(plan: TablePlan, name: str) -> str:
    col = next((c for c in plan.columns if c.name == name), None)
    expr = f"S.{sql.ident(name)}"
    return f"PARSE_JSON({expr})" if col is not None and col.bq_type == "JSON" else expr


def write_rows(plan: TablePlan, target: str, staging: str, *, full: bool, whole: bool = False) -> str:
    """The MERGE (merge tables) or keyed INSERT (append tables) of the staged rows.

    ``full``: a full sync (a reconcile stamps rows missing from SQLite). ``whole``: the read took
    every row (a full sync, the first run, after a reset or an added column): an append table is
    then MERGEd too, so rows already in BigQuery take SQLite's content (a reused id's new row, an
    added column's values)."""
    cols = plan.column_names
    names = ", ".join(sql.ident(c) for c in cols)
    values = ", ".join(_value(plan, c) for c in cols)
    on = " AND ".join(f"T.{sql.ident(k)} = S.{sql.ident(k)}" for k in plan.dedupe_on)
    if plan.mode == "append" and not whole:
        return (
            f"INSERT INTO `{target}` ({names}) SELECT {values} FROM `{staging}` S "
            f"WHERE NOT EXISTS (SELECT 1 FROM `{target}` T WHERE {on})"
        )
    sets = [f"{sql.ident(c)} = {_value(plan, c)}" for c in cols if c not in plan.dedupe_on]
    reconcile = plan.deletes == "reconcile" and plan.mode == "merge"
    if reconcile:
        sets.append(f"{sql.ident(DELETED_AT)} = NULL")
    merge = f"MERGE `{target}` T USING `{staging}` S ON {on} "
    if sets:
        merge += f"WHEN MATCHED THEN UPDATE SET {', '.join(sets)} "
    merge += f"WHEN NOT MATCHED THEN INSERT ({names}) VALUES ({values})"
    if reconcile and full:
        merge += (
            f" WHEN NOT MATCHED BY SOURCE AND T.{sql.ident(DELETED_AT)} IS NULL "
            f"THEN UPDATE SET {sql.ident(DELETED_AT)} = CURRENT_TIMESTAMP()"
        )
    return merge


def advance(plan: TablePlan, state_dataset: str, apply: Apply) -> list[str]:
    """The watermark update, and the check that it was this run's (else the script fails and rolls back)."""
    state = f"`{state_dataset}.{STATE_TABLE}`"
    who = f"table_name = {sql.string(plan.name)}"
    run = sql.string(apply.run_id)
    sets = [
        f"watermark = {sql.string(apply.watermark)}",
        f"key_columns = {sql.string(','.join(plan.key))}",
        "version = version + 1",
        f"last_run = {run}",
        "last_sync_at = CURRENT_TIMESTAMP()",
        f"last_rows_read = {sql.integer(apply.rows_read)}",
        f"last_rows_merged = {sql.integer(apply.rows_merged)}",
        f"rows_total = COALESCE(rows_total, 0) + {sql.integer(apply.rows_merged)}",
        "last_error = NULL",
    ]
    if apply.full:
        sets.append("last_full_sync_at = CURRENT_TIMESTAMP()")
    lost = sql.string(
        f"{plan.name}: rolled back: another run took over the lease (lease_s = {apply.lease_s} s ran out "
        "before this run renewed it) or the table was reset during the run"
    )
    return [
        f"UPDATE {state} SET {', '.join(sets)} WHERE {who} AND lease_owner = {run} "
        f"AND version = {sql.integer(apply.version)}",
        f"SELECT ERROR({lost}) FROM (SELECT COUNT(*) AS n FROM {state} WHERE {who} AND last_run = {run} "
        f"AND version = {sql.integer(apply.version + 1)}) WHERE n = 0",
    ]


def script(statements: list[str]) -> str:
    """Statements as one multi-statement transaction."""
    return "BEGIN TRANSACTION;\n" + ";\n".join(statements) + ";\nCOMMIT TRANSACTION;"
