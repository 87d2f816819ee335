"""fan_out: one export request (export-requests) → one table export per table (table-exports).

Dataset mode ``{"dataset": "sales", "tables": [...]}`` exports tables of a configured dataset;
query mode ``{"export": "orders_daily", "date": "2025-01-08"}`` runs one configured query.
Destinations and format default from the dataset/export entry, then from every configured
destination. Only configured datasets and exports are accepted: the config is the list of
what may leave the project, so a request cannot widen it.

The run id is the request's ``run_id``, else derived from the Pub/Sub message id and publish
time: a redelivered request repeats the same run (same GCS folder, same BigQuery job ids)
instead of starting a second one. The emulator reuses small message ids after a restart, so
the id alone is not enough.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from shared import log, run_index
from shared.config import Config
from shared.config.types import TABLE_RE
from shared.errors import RejectedInput
from shared.events import parse_pubsub
from shared.gcp import pubsub
from shared.gcp.bigquery import TableInfo, Warehouse, warehouse
from shared.layout import EXTENSIONS, RunFolder, default_file_name
from shared.message_fields import Format
from shared.messages import ExportRequest, Source, TableExport
from shared.topology import TABLE_EXPORTS

logger = log.get_logger(__name__)

W = "export request"
_PUBLISH_TIME_RE = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?$")


# ---- run ids and dates ---------------------------------------------------------------------


def derive_run_id(message_id: str, publish_time: str) -> str:
    """``r`` + 12 hex digits of sha1(message id | publish time): stable across redeliveries."""
    return "r" + hashlib.sha1(f"{message_id}|{publish_time}".encode()).hexdigest()[:12]


def new_run_id() -> str:
    """A fresh run id of the same shape, for callers that name the run themselves (offsite run)."""
    return "r" + secrets.token_hex(6)


def parse_publish_time(value: str) -> dt.datetime | None:
    """Pub/Sub's RFC 3339 publish time (nanoseconds allowed) → aware datetime; None if unparseable."""
    match = _PUBLISH_TIME_RE.match(value.strip()) if value else None
    if not match:
        return None
    base, fraction, zone = match.groups()
    micros = (fraction or "0")[:6].ljust(6, "0")
    offset = "+00:00" if zone in (None, "Z") else zone
    try:
        return dt.datetime.fromisoformat(f"{base}.{micros}{offset}")
    except ValueError:
        return None


def scheduled_date(publish_time: str, time_zone: str) -> dt.date:
    """The day the request was scheduled for: its publish time's date in ``time_zone``."""
    when = parse_publish_time(publish_time)
    if when is None:
        logger.warning("publish time missing or unreadable; using the current time", publish_time=publish_time)
        when = dt.datetime.now(dt.UTC)
    return when.astimezone(ZoneInfo(time_zone)).date()


# ---- checks that need only the config (shared with `offsite run`) --------------------------


def check_request(request: ExportRequest, config: Config) -> None:
    """Reject what the config alone can tell is wrong: unknown dataset/export, unknown destination."""
    if request.dataset is not None and config.dataset(request.dataset) is None:
        known = ", ".join(d.name for d in config.datasets) or "none configured"
        raise RejectedInput(f"{W}.dataset: {request.dataset!r} is not a configured dataset (configured: {known})")
    if request.export is not None and config.export(request.export) is None:
        known = ", ".join(e.name for e in config.exports) or "none configured"
        raise RejectedInput(f"{W}.export: {request.export!r} is not a configured export (configured: {known})")
    destinations(request, config)


def destinations(request: ExportRequest, config: Config) -> tuple[str, ...]:
    entry = config.dataset(request.dataset) if request.dataset else config.export(request.export or "")
    known = config.destination_names()
    chosen = request.destinations or (entry.destinations if entry else ()) or known
    for name in chosen:
        if name not in known:
            raise RejectedInput(
                f"{W}.destinations: {name!r} is not a configured destination (configured: {', '.join(known) or 'none'})"
            )
    if not chosen:
        raise RejectedInput(f"{W}.destinations: none given and none configured")
    return tuple(chosen)


# ---- planning ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TableChoice:
    """The tables a dataset request stands for, and what was left out (with why)."""

    chosen: list[str]
    skipped: list[str]
    unsupported: list[str]
    """Names offsite cannot carry; fan_out reports each (``_unsupported_name``)."""


def plan(
    request: ExportRequest, config: Config, wh: Warehouse | None, *, run_id: str, publish_time: str
) -> list[TableExport]:
    """The table exports a request stands for (validated against the config and, in dataset mode,
    BigQuery); a table whose name offsite cannot carry is reported ``rejected`` (select_tables)."""
    return _plan(request, config, wh, run_id=run_id, publish_time=publish_time, choose=select_tables)


def expected_exports(
    request: ExportRequest, config: Config, wh: Warehouse | None, *, run_id: str, publish_time: str
) -> list[TableExport]:
    """What :func:`plan` returns, reporting nothing: for callers that only look (`offsite run --wait`)."""
    return _plan(request, config, wh, run_id=run_id, publish_time=publish_time, choose=chosen_tables)


def _plan(
    request: ExportRequest,
    config: Config,
    wh: Warehouse | None,
    *,
    run_id: str,
    publish_time: str,
    choose: Callable[[ExportRequest, Config, Warehouse], list[str]],
) -> list[TableExport]:
    check_request(request, config)
    dests = destinations(request, config)
    prefix = config.export_prefix.strip("/")

    def task(source: Source, date: dt.date, fmt: Format, file_name: str) -> TableExport:
        return RunFolder(prefix, source, date, run_id).export_task(fmt, dests, file_name)

    if request.export is not None:
        entry = config.export(request.export)
        assert entry is not None
        fmt = request.format or entry.format
        date = request.date or scheduled_date(publish_time, entry.time_zone) - dt.timedelta(days=entry.days_back)
        source = Source(mode="query", project=config.project, export=entry.name)
        return [task(source, date, fmt, _query_file_name(entry.file_name, entry.format, fmt))]
    dataset = config.dataset(request.dataset or "")
    assert dataset is not None and wh is not None, "dataset mode needs a warehouse"
    fmt = request.format or dataset.format
    date = request.date or scheduled_date(publish_time, dataset.time_zone)
    exports = []
    for table in choose(request, config, wh):
        source = Source(mode="table", project=config.project, dataset=dataset.name, table=table)
        exports.append(task(source, date, fmt, default_file_name(table, fmt)))
    return exports


def _query_file_name(template: str, configured_format: str, fmt: str) -> str:
    """A request may override the format; then the template's extension follows it."""
    old, new = "." + EXTENSIONS[configured_format], "." + EXTENSIONS[fmt]
    if fmt != configured_format and template.endswith(old):
        return template[: -len(old)] + new
    return template


def select_tables(request: ExportRequest, config: Config, wh: Warehouse) -> list[str]:
    """Tables to export (:func:`table_choice`), each table whose name offsite cannot carry
    reported ``rejected``; RejectedInput when none is left."""
    choice = table_choice(request, config, wh)
    for name in choice.unsupported:
        _unsupported_name(config, request.dataset or "", name)
    return _chosen_or_rejected(choice, config, request)


def chosen_tables(request: ExportRequest, config: Config, wh: Warehouse) -> list[str]:
    """:func:`select_tables`, reporting nothing."""
    return _chosen_or_rejected(table_choice(request, config, wh), config, request)


def _chosen_or_rejected(choice: TableChoice, config: Config, request: ExportRequest) -> list[str]:
    if not choice.chosen:
        why = f"; skipped: {', '.join(choice.skipped)}" if choice.skipped else "; the dataset has no tables"
        raise RejectedInput(f"{W}.dataset: nothing to export from {config.project}.{request.dataset}{why}")
    return choice.chosen


def table_choice(request: ExportRequest, config: Config, wh: Warehouse) -> TableChoice:
    """Tables to export: the requested ones (each must exist and be a table), else the dataset's
    tables minus views/external tables, limited to the config's include list, minus its excludes."""
    dataset = config.dataset(request.dataset or "")
    assert dataset is not None
    listing = {t.name: t for t in wh.list_tables(dataset.name)}
    exclude, include = set(dataset.tables.exclude), set(dataset.tables.include)
    chosen: list[str] = []
    skipped: list[str] = []
    unsupported: list[str] = []
    if request.tables:
        for name in request.tables:
            info = listing.get(name)
            if info is None:
                raise RejectedInput(
                    f"{W}.tables: {name!r} is not a table of {config.project}.{dataset.name} (tables: {_names(listing.values())})"
                )
            if not info.exportable:
                raise RejectedInput(f"{W}.tables: {name!r} is a {info.table_type}; only tables can be exported")
            if name in exclude:
                logger.warning("table excluded by the config; skipped", table=name, dataset=dataset.name)
                skipped.append(f"{name} (excluded)")
                continue
            chosen.append(name)
    else:
        for info in listing.values():
            if not info.exportable:
                logger.info("not a table; skipped", table=info.name, table_type=info.table_type, dataset=dataset.name)
                skipped.append(f"{info.name} ({info.table_type})")
            elif not TABLE_RE.match(info.name):  # BigQuery also allows Unicode letters and spaces
                unsupported.append(info.name)
                skipped.append(f"{info.name} (name not supported)")
            elif include and info.name not in include:
                skipped.append(f"{info.name} (not included)")
            elif info.name in exclude:
                skipped.append(f"{info.name} (excluded)")
            else:
                chosen.append(info.name)
        for missing in sorted(include - set(listing)):
            logger.warning("included table does not exist", table=missing, dataset=dataset.name)
    return TableChoice(chosen, skipped, unsupported)


def _unsupported_name(config: Config, dataset: str, table: str) -> None:
    """A table whose name offsite's run folders and messages cannot carry (anything but letters,
    digits, '_' and '-': Unicode letters, spaces) is left out of the dataset's export, said loudly: a
    ``rejected`` result naming it, so the rest of the dataset still goes out (before: the whole
    request failed, retried until dead-lettered)."""
    from shared.ids import Stage, Status
    from shared.messages import VerifyResult
    from shared.reporting.results import report

    reason = (
        f"{config.project}.{dataset}.{table}: not exported; offsite exports tables named with ASCII letters, "
        "digits, '_' and '-' — rename the table, or export it with a query export"
    )
    logger.warning("table name not supported; skipped", table=table, dataset=dataset)
    report(VerifyResult(status=Status.REJECTED, stage=Stage.FAN_OUT, reason=reason), config=config)


def _names(tables: Any, limit: int = 20) -> str:
    names = [t.name for t in tables if isinstance(t, TableInfo) and t.exportable]
    more = f", … ({len(names) - limit} more)" if len(names) > limit else ""
    return (", ".join(names[:limit]) + more) if names else "none"


# ---- the stage -----------------------------------------------------------------------------


def fan_out(event: Any, config: Config, *, wh: Warehouse | None = None) -> list[TableExport]:
    """Handle one export-requests CloudEvent: validate, plan, publish one table export each.

    Bad input raises RejectedInput (reported and acked by shared.stages.runner); BigQuery or Pub/Sub
    trouble raises TransientError (redelivered; the same run id makes the retry harmless).
    """
    message = parse_pubsub(event)
    with log.bind(message_id=message.message_id):
        request = ExportRequest.from_json(message.data)
        run_id = request.run_id or derive_run_id(message.message_id, message.publish_time)
        with log.bind(run_id=run_id):
            if wh is None and request.dataset is not None:
                wh = warehouse()
            exports = plan(request, config, wh, run_id=run_id, publish_time=message.first_published)
            run_index.record(config.state_bucket_name, exports)  # before any export can be seen
            pubsub.publish_all(TABLE_EXPORTS, exports, run_id=run_id)
            logger.info(
                "fanned out",
                exports=len(exports),
                sources=[e.source.label for e in exports],
                date=exports[0].date.isoformat(),
                destinations=list(exports[0].destinations),
            )
            return exports
