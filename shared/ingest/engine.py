"""One ingest run: for each selected table, lease → read → stage → apply → release.

Per table (:func:`sync_table`): plan it from the SQLite schema and config; take its lease in
``_offsite_sync_state`` (another run holding it → ``busy``, nothing done); check and extend
the target's schema; read the changed rows in one SQLite snapshot, in batches, into a staging
table unique to the run (``load_path``: one pending Storage Write API stream committed once,
:mod:`shared.ingest.write_api`, or Parquet files through load jobs); then one transaction MERGEs or INSERTs
them and advances the watermark (:mod:`shared.ingest.apply`). The staging table is deleted and
the lease released in ``finally``; the lease is renewed along the way (per batch and before the
apply, :class:`shared.ingest.state.LeaseKeeper`). Adding columns to the target clears the
watermark first, so the table is read whole and older rows get the new columns' values. An
empty read changes no table data. A table that fails (a plan error, a schema conflict, values
its types cannot hold, an API error, a SQLite error such as a busy database, a lost lease, or
an unexpected error, which is also logged with its traceback) is reported with its message and
the run goes on with the next table.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from shared import log
from shared.config.ingest import IngestSettings
from shared.errors import OffsiteError, PermanentError, TransientError
from shared.ingest import apply as applying
from shared.ingest import plan as planning
from shared.ingest import target, write_api
from shared.ingest.parquet import ParquetChunks
from shared.ingest.source import ReadResult, TableReader
from shared.ingest.state import LeaseKeeper, SyncState, TableState, encode_watermark

logger = log.get_logger(__name__)

FAULT_AFTER_MERGE = "after-merge"  # test hook: the transaction fails between MERGE and watermark
FAULT_BEFORE_COMMIT = "before-commit"  # test hook: the run dies after the last append, before the commit


@dataclass
class TableOutcome:
    table: str
    status: str  # synced | empty | busy | failed | planned (dry run) | deferred (out of time)
    rows_read: int = 0
    rows_merged: int = 0
    watermark: Any = None
    mode: str | None = None
    load_path: str | None = None
    columns_added: list[str] = field(default_factory=list)
    error: str | None = None
    transient: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class IngestRun:
    """What a run needs: settings, a BigQuery client and where the tables go."""

    settings: IngestSettings
    client: Any
    project: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    faults: frozenset[str] = frozenset()
    write_client: Any = None  # BigQueryWriteClient; from the environment when None
    write_api_unavailable: bool = False  # found out during this run (auto then uses load jobs)

    @property
    def load_path(self) -> str:
        """``write_api`` or ``load_job``: the configured one, ``auto`` resolved."""
        path = self.settings.load_path
        if path == "auto":
            return "write_api" if write_api.available() and not self.write_api_unavailable else "load_job"
        return path

    def storage_writer(self) -> Any:
        if self.write_client is None:
            self.write_client = write_api.client_from_env()
        return self.write_client

    @property
    def state(self) -> SyncState:
        return SyncState(self.client, self.project, self.settings.dataset)

    def table_id(self, table: str) -> str:
        return f"{self.project}.{self.settings.dataset}.{table}"

    def hash_key(self) -> bytes:
        key = self.settings.hash_key
        return key.reveal().encode("utf-8") if key is not None else b""


def select_tables(settings: IngestSettings, discovered: Sequence[str], wanted: Iterable[str] | None) -> list[str]:
    """The tables of this run: all discovered ones, or those asked for (each must be discovered)."""
    if not wanted:
        return list(discovered)
    wanted = list(wanted)
    unknown = [t for t in wanted if t not in discovered]
    if unknown:
        from shared.errors import RejectedInput

        raise RejectedInput(
            f"tables: {', '.join(repr(t) for t in unknown)} not synced (discovered: {', '.join(discovered) or 'none'})"
        )
    return wanted


def sync(
    run: IngestRun,
    *,
    tables: Iterable[str] | None = None,
    full: bool = False,
    dry_run: bool = False,
    deadline: float | None = None,
) -> list[TableOutcome]:
    """Sync the selected tables one after another; one table's failure does not stop the others.

    With ``deadline`` (``time.monotonic()``), a table is started only when the longest one so
    far would still end before it; the rest come back ``deferred`` (none of their work done)."""
    conn = planning.connect(run.settings.sqlite_path)
    outcomes: list[TableOutcome] = []
    try:
        chosen = select_tables(run.settings, planning.discover(conn, run.settings), tables)
        if not dry_run:
            run.state.ensure()
        longest = 0.0
        for name in chosen:
            started = time.monotonic()
            if deadline is not None and outcomes and started + longest > deadline:
                outcomes.append(TableOutcome(name, "deferred"))
                continue
            outcomes.append(sync_table(run, conn, name, full=full, dry_run=dry_run))
            longest = max(longest, time.monotonic() - started)
    finally:
        conn.close()
    return outcomes


def sync_table(run: IngestRun, conn: Any, table: str, *, full: bool = False, dry_run: bool = False) -> TableOutcome:
    with log.bind(run_id=run.run_id, table=table):
        try:
            plan = planning.plan_table(conn, run.settings, table)
            if dry_run:
                return _dry_run(run, conn, plan, full)
        except Exception as exc:  # this table only: the others still run
            error = table_error(table, exc)
            logger.error("ingest table cannot be planned or read", error=str(error), exc_info=unexpected(exc))
            return TableOutcome(table, "failed", error=str(error), transient=isinstance(error, TransientError))
        try:
            acquired = run.state.acquire(table, run.run_id, run.settings.lease_s)
        except OffsiteError as exc:  # this table only: the others still run
            logger.error("ingest table lease could not be taken", error=str(exc))
            return TableOutcome(
                table, "failed", mode=plan.mode, error=str(exc), transient=isinstance(exc, TransientError)
            )
        if not acquired:
            logger.warning("ingest table is being synced by another run; skipped")
            return TableOutcome(table, "busy", mode=plan.mode, error="another run holds the lease")
        try:
            lease = LeaseKeeper(run.state, table, run.run_id, run.settings.lease_s)
            outcome = _sync_leased(run, conn, plan, full, lease)
        except Exception as exc:  # this table only: the others still run
            error = table_error(table, exc)
            logger.error("ingest table failed", error=str(error), exc_info=unexpected(exc))
            outcome = TableOutcome(
                table, "failed", mode=plan.mode, error=str(error), transient=isinstance(error, TransientError)
            )
            _record_failure(run, table, str(error))
        finally:
            _release(run, table)
        logger.info("ingest table done", **{k: v for k, v in outcome.as_dict().items() if k != "table"})
        return outcome


def unexpected(exc: Exception) -> bool:
    """An error that is neither ours nor SQLite's: a bug, logged with its traceback."""
    return not isinstance(exc, OffsiteError | sqlite3.Error)


def table_error(table: str, exc: Exception) -> OffsiteError:
    """One table's failure as an OffsiteError: ours as they are; a SQLite error naming the table,
    transient when the database was busy or locked (the next attempt may get through), else permanent;
    anything else (a bug) permanent, naming its type so the report shows it."""
    if isinstance(exc, OffsiteError):
        return exc
    if unexpected(exc):
        return PermanentError(f"table {table}: unexpected error, this table stopped: {type(exc).__name__}: {exc}")
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # the primary result code
    busy = code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or str(exc).startswith(
        ("database is locked", "database table is locked")
    )
    kind = TransientError if busy else PermanentError
    return kind(f"table {table}: SQLite could not read it: {exc}")


def _release(run: IngestRun, table: str) -> None:
    try:
        run.state.release(table, run.run_id)
    except OffsiteError as exc:  # the lease then expires after lease_s; the outcome stands
        logger.warning("could not release the lease; it expires by itself", error=str(exc))


def _record_failure(run: IngestRun, table: str, error: str) -> None:
    try:
        run.state.record(table, run.run_id, rows_read=0, error=error[:2000])
    except OffsiteError as exc:  # the failure itself is reported; its record is best effort
        logger.warning("could not record the failure in the sync state", error=str(exc))


def _sync_leased(run: IngestRun, conn: Any, plan: planning.TablePlan, full: bool, lease: LeaseKeeper) -> TableOutcome:
    state = run.state.get(plan.name)
    target.check_key(plan, state.key_columns)

    def read_whole(_columns: list[str]) -> None:
        """New columns: every row is read again to fill them (SQLite shows an added column's DEFAULT on
        older rows). Cleared before the ALTER: should this run fail after it, the next one still reads all."""
        nonlocal state
        run.state.forget_watermark(plan.name, run.run_id)
        state = dataclasses.replace(state, watermark=None)

    added = target.ensure_target(run.client, run.table_id(plan.name), plan, before_adding=read_whole)
    staging = target.staging_id(run.project, run.settings.dataset, plan.name, run.run_id)
    staged = False

    def create() -> None:
        nonlocal staged
        if not staged:
            target.create_staging(run.client, staging, plan, run.settings.staging_expiration_minutes)
            staged = True

    try:
        try:
            reader = _read(run, conn, plan, state, full, _stager(run, plan, staging, create), lease)
        except write_api.Unavailable as exc:
            if run.settings.load_path != "auto":
                raise
            logger.warning("the Storage Write API is not available; staging through load jobs", error=str(exc))
            run.write_api_unavailable = True  # the run's other tables go straight to load jobs
            reader = _read(run, conn, plan, state, full, _stager(run, plan, staging, create), lease)
        result = reader.result
        if result.bad_total:
            raise target.SchemaConflict(_bad_message(plan.name, reader))
        if result.rows == 0:
            run.state.record(plan.name, run.run_id, rows_read=0, error=None)
            return TableOutcome(
                plan.name,
                "empty",
                mode=plan.mode,
                load_path=run.load_path,
                watermark=state.watermark,
                columns_added=added,
            )
        lease.keep()  # the apply checks the lease: a lost one would roll it back
        return _apply(run, plan, state, staging, result, full=full, added=added)
    finally:
        if staged:
            target.drop_staging(run.client, staging)


def _apply(
    run: IngestRun,
    plan: planning.TablePlan,
    state: TableState,
    staging: str,
    result: ReadResult,
    *,
    full: bool,
    added: list[str],
) -> TableOutcome:
    """One script: MERGE (or replace) the staged rows into the table and advance the sync state with them."""
    watermark = result.watermark  # the reader started from the stored one: never behind it
    whole = full or state.watermark is None  # every row was read
    statements = [applying.write_rows(plan, run.table_id(plan.name), staging, full=full, whole=whole)]
    if FAULT_AFTER_MERGE in run.faults:
        statements.append("SELECT ERROR('injected fault: stopped between MERGE and the watermark update')")
    change = applying.Apply(
        run.run_id,
        state.version,
        encode_watermark(watermark),
        result.rows,
        result.rows,
        whole,
        run.settings.lease_s,
    )
    statements += applying.advance(plan, f"{run.project}.{run.settings.dataset}", change)
    _execute(run, applying.script(statements), plan.name)
    return TableOutcome(
        plan.name,
        "synced",
        result.rows,
        result.rows,
        watermark,
        mode=plan.mode,
        load_path=run.load_path,
        columns_added=added,
    )


def _stager(run: IngestRun, plan: planning.TablePlan, staging: str, create: Any) -> Any:
    """What takes the read batches into the staging table: a pending write stream, or Parquet files and load jobs."""
    if run.load_path == "write_api":

        def before_commit() -> None:
            if FAULT_BEFORE_COMMIT in run.faults:
                raise TransientError("injected fault: stopped after the last append, before the commit")

        return write_api.PendingStager(plan, run.storage_writer(), staging, create, before_commit=before_commit)

    def load(path: Any) -> None:
        create()
        target.load_parquet(run.client, staging, plan, path)

    return ParquetChunks(plan, run.settings.rows_per_load, load)


def _read(
    run: IngestRun, conn: Any, plan: planning.TablePlan, state: TableState, full: bool, stager: Any, lease: LeaseKeeper
) -> TableReader:
    reader = TableReader(
        conn,
        plan,
        watermark=state.watermark,
        full=full,
        batch_rows=run.settings.batch_rows,
        hash_key=run.hash_key(),
    )
    conn.execute("BEGIN")  # one snapshot for the whole read
    try:
        for batch in reader.batches():
            lease.keep()  # a long read outlasts lease_s
            if not reader.result.bad_total:  # after a bad value nothing is applied; keep counting
                stager.add(batch)
        if not reader.result.bad_total:
            stager.flush()
    finally:
        conn.execute("COMMIT")
        stager.close()
    return reader


def _dry_run(run: IngestRun, conn: Any, plan: planning.TablePlan, full: bool) -> TableOutcome:
    try:
        state = run.state.get(plan.name)
    except OffsiteError:
        state = TableState(plan.name)
    reader = TableReader(
        conn, plan, watermark=state.watermark, full=full, batch_rows=run.settings.batch_rows, hash_key=run.hash_key()
    )
    conn.execute("BEGIN")
    try:
        for _ in reader.batches():
            pass
    finally:
        conn.execute("COMMIT")
    error = _bad_message(plan.name, reader) if reader.result.bad_total else None
    return TableOutcome(
        plan.name,
        "failed" if error else "planned",
        reader.result.rows,
        0,
        reader.result.watermark,
        mode=plan.mode,
        error=error,
    )


def _bad_message(table: str, reader: TableReader) -> str:
    result = reader.result
    cells = "; ".join(str(c) for c in result.bad)
    more = f" (and {result.bad_total - len(result.bad)} more)" if result.bad_total > len(result.bad) else ""
    return f"table {table}: {result.bad_total} value(s) their column's type cannot hold, nothing applied: {cells}{more}"


def _execute(run: IngestRun, script: str, table: str) -> None:
    from shared.gcp.bq_jobs import mapped_errors, run_query

    with mapped_errors(f"applying {table}"):  # never retried blindly: the state check decides on the rerun
        run_query(run.client, script)
