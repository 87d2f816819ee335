"""Pub/Sub message contracts (DESIGN.md): dataclasses with schema_version and strict parsing.

Every ``from_json`` raises :class:`RejectedInput` naming the field, the value and what was
expected; bad input is never retried. Table names, dates and run ids are checked against
strict patterns, so nothing SQL-looking ever reaches a query.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from shared.config import FORMATS
from shared.errors import RejectedInput

SCHEMA_VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024
IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,1023}$")
RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
DESTINATION_RE = re.compile(r"^(box|memory|sftp:[a-z0-9][a-z0-9_-]{0,62})$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

ResultStatus = Literal["in_sync", "mismatch", "incomplete", "rejected", "failed"]


# ---- field readers: each names the field and the bad value --------------------------------


def parse_json_object(data: bytes | str, what: str) -> dict[str, Any]:
    if len(data) > MAX_MESSAGE_BYTES:
        raise RejectedInput(f"{what}: message is {len(data)} bytes; the limit is {MAX_MESSAGE_BYTES}")
    try:
        obj = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RejectedInput(f"{what}: not valid JSON ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise RejectedInput(f"{what}: expected a JSON object, got {type(obj).__name__}")
    version = obj.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise RejectedInput(f"{what}.schema_version: {version!r} is not supported (expected {SCHEMA_VERSION})")
    return obj


def check_keys(obj: dict[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(set(obj) - allowed - {"schema_version"})
    if unknown:
        raise RejectedInput(f"{what}: unknown field {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")


def read_str(
    obj: dict[str, Any], key: str, what: str, *, required: bool = False, pattern: re.Pattern[str] | None = None
) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise RejectedInput(f"{what}.{key}: required field is missing")
        return None
    if not isinstance(value, str):
        raise RejectedInput(f"{what}.{key}: expected a string, got {value!r}")
    if pattern is not None and not pattern.match(value):
        raise RejectedInput(f"{what}.{key}: {value[:80]!r} does not match {pattern.pattern}")
    return value


def read_date(obj: dict[str, Any], key: str, what: str) -> dt.date | None:
    value = read_str(obj, key, what)
    if value is None:
        return None
    if not DATE_RE.match(value):
        raise RejectedInput(f"{what}.{key}: {value[:80]!r} is not a date (expected YYYY-MM-DD)")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise RejectedInput(f"{what}.{key}: {value!r} is not a valid calendar date") from None


def read_names(obj: dict[str, Any], key: str, what: str, pattern: re.Pattern[str]) -> tuple[str, ...] | None:
    """A list of names, or one comma-separated string (seed 000's ``"a,b"``)."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RejectedInput(
            f"{what}.{key}: expected a list of strings or a comma-separated string, got {value!r}"[:300]
        )
    for v in value:
        if not pattern.match(v):
            raise RejectedInput(f"{what}.{key}: {v[:80]!r} is not a valid name ({pattern.pattern})")
    if not value:
        raise RejectedInput(f"{what}.{key}: must not be empty")
    return tuple(dict.fromkeys(value))


def read_format(obj: dict[str, Any], what: str) -> str | None:
    value = read_str(obj, "format", what)
    if value is not None and value.upper() not in FORMATS:
        raise RejectedInput(f"{what}.format: {value!r} is not supported; expected one of {', '.join(FORMATS)}")
    return value.upper() if value else None


class Message:
    """JSON encoding shared by every contract."""

    KIND: ClassVar[str] = "message"

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))  # type: ignore[call-overload]

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None or k in ("reason",)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


# ---- contracts -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportRequest(Message):
    """export-requests: dataset mode (``dataset``) or query mode (``export``), never both."""

    KIND: ClassVar[str] = "export request"
    dataset: str | None = None
    tables: tuple[str, ...] | None = None
    export: str | None = None
    date: dt.date | None = None
    destinations: tuple[str, ...] | None = None
    format: str | None = None
    run_id: str | None = None
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def from_json(cls, data: bytes | str) -> ExportRequest:
        w = "export request"
        obj = parse_json_object(data, w)
        check_keys(obj, {"dataset", "tables", "export", "date", "destinations", "format", "run_id"}, w)
        dataset = read_str(obj, "dataset", w, pattern=IDENT_RE)
        export = read_str(obj, "export", w, pattern=IDENT_RE)
        if dataset and export:
            raise RejectedInput(f"{w}: give either 'dataset' or 'export', not both")
        if not dataset and not export:
            raise RejectedInput(f"{w}: one of 'dataset' (whole tables) or 'export' (a configured query) is required")
        tables = read_names(obj, "tables", w, IDENT_RE)
        if export and tables:
            raise RejectedInput(f"{w}.tables: only valid with 'dataset', not with 'export'")
        return cls(
            dataset=dataset,
            tables=tables,
            export=export,
            date=read_date(obj, "date", w),
            destinations=read_names(obj, "destinations", w, DESTINATION_RE),
            format=read_format(obj, w),
            run_id=read_str(obj, "run_id", w, pattern=RUN_ID_RE),
        )


@dataclass(frozen=True)
class Source:
    """What a run exports: one table (dataset mode) or one configured query (query mode)."""

    mode: Literal["table", "query"]
    project: str
    dataset: str | None = None
    table: str | None = None
    export: str | None = None

    @property
    def label(self) -> str:
        return f"{self.dataset}.{self.table}" if self.mode == "table" else f"export:{self.export}"

    @classmethod
    def from_dict(cls, obj: Any, what: str) -> Source:
        if not isinstance(obj, dict):
            raise RejectedInput(f"{what}: expected an object, got {obj!r}")
        mode = obj.get("mode")
        if mode not in ("table", "query"):
            raise RejectedInput(f"{what}.mode: {mode!r} is not 'table' or 'query'")
        src = cls(
            mode=mode,
            project=read_str(obj, "project", what, required=True) or "",
            dataset=read_str(obj, "dataset", what, pattern=IDENT_RE, required=mode == "table"),
            table=read_str(obj, "table", what, pattern=IDENT_RE, required=mode == "table"),
            export=read_str(obj, "export", what, pattern=IDENT_RE, required=mode == "query"),
        )
        return src


@dataclass(frozen=True)
class TableExport(Message):
    """table-exports: one table (or query) to export in one run."""

    KIND: ClassVar[str] = "table export"
    run_id: str
    date: dt.date
    source: Source
    format: str
    destinations: tuple[str, ...]
    prefix: str
    file_name: str = "part-*"
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def from_json(cls, data: bytes | str) -> TableExport:
        w = "table export"
        obj = parse_json_object(data, w)
        check_keys(obj, {"run_id", "date", "source", "format", "destinations", "prefix", "file_name"}, w)
        date = read_date(obj, "date", w)
        if date is None:
            raise RejectedInput(f"{w}.date: required field is missing")
        fmt = read_format(obj, w)
        if fmt is None:
            raise RejectedInput(f"{w}.format: required field is missing")
        return cls(
            run_id=read_str(obj, "run_id", w, required=True, pattern=RUN_ID_RE) or "",
            date=date,
            source=Source.from_dict(obj.get("source"), f"{w}.source"),
            format=fmt,
            destinations=read_names(obj, "destinations", w, DESTINATION_RE) or (),
            prefix=read_str(obj, "prefix", w, required=True) or "",
            file_name=read_str(obj, "file_name", w) or "part-*",
        )


@dataclass(frozen=True)
class DeliveryReceipt(Message):
    """deliveries: one file delivered (or found unchanged) at one destination."""

    KIND: ClassVar[str] = "delivery receipt"
    run_id: str
    bucket: str
    object: str
    generation: int
    destination: str
    remote_path: str
    size: int
    sha1: str
    status: str = "uploaded"
    remote_id: str | None = None
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def from_json(cls, data: bytes | str) -> DeliveryReceipt:
        w = "delivery receipt"
        obj = parse_json_object(data, w)
        check_keys(obj, {f.name for f in dataclasses.fields(cls)}, w)
        for key in ("generation", "size"):
            if not isinstance(obj.get(key), int) or isinstance(obj.get(key), bool):
                raise RejectedInput(f"{w}.{key}: expected an integer, got {obj.get(key)!r}")
        return cls(
            run_id=read_str(obj, "run_id", w, required=True, pattern=RUN_ID_RE) or "",
            bucket=read_str(obj, "bucket", w, required=True) or "",
            object=read_str(obj, "object", w, required=True) or "",
            generation=obj["generation"],
            destination=read_str(obj, "destination", w, required=True, pattern=DESTINATION_RE) or "",
            remote_path=read_str(obj, "remote_path", w, required=True) or "",
            size=obj["size"],
            sha1=read_str(obj, "sha1", w, required=True, pattern=re.compile(r"^[0-9a-f]{40}$")) or "",
            status=read_str(obj, "status", w) or "uploaded",
            remote_id=read_str(obj, "remote_id", w),
        )


@dataclass(frozen=True)
class VerifyRequest(Message):
    """verify-requests: ``{run_id}``, ``{dataset, table, date}``, ``{export, date}`` or ``{sweep: true}``."""

    KIND: ClassVar[str] = "verify request"
    run_id: str | None = None
    dataset: str | None = None
    table: str | None = None
    export: str | None = None
    date: dt.date | None = None
    destination: str | None = None
    sweep: bool = False
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def from_json(cls, data: bytes | str) -> VerifyRequest:
        w = "verify request"
        obj = parse_json_object(data, w)
        check_keys(obj, {"run_id", "dataset", "table", "export", "date", "destination", "sweep"}, w)
        sweep = obj.get("sweep", False)
        if not isinstance(sweep, bool):
            raise RejectedInput(f"{w}.sweep: expected true or false, got {sweep!r}")
        req = cls(
            run_id=read_str(obj, "run_id", w, pattern=RUN_ID_RE),
            dataset=read_str(obj, "dataset", w, pattern=IDENT_RE),
            table=read_str(obj, "table", w, pattern=IDENT_RE),
            export=read_str(obj, "export", w, pattern=IDENT_RE),
            date=read_date(obj, "date", w),
            destination=read_str(obj, "destination", w, pattern=DESTINATION_RE),
            sweep=sweep,
        )
        forms = [bool(req.sweep), bool(req.run_id), bool(req.dataset or req.table), bool(req.export)]
        if sum(forms) != 1:
            raise RejectedInput(f"{w}: give exactly one of run_id, dataset+table+date, export+date, or sweep: true")
        if (req.dataset or req.table) and not (req.dataset and req.table and req.date):
            raise RejectedInput(f"{w}: dataset, table and date are required together")
        if req.export and not req.date:
            raise RejectedInput(f"{w}.date: required with 'export'")
        return req


@dataclass(frozen=True)
class VerifyResult(Message):
    """verify-results: one per (run, destination) once complete, plus rejected/failed reports."""

    KIND: ClassVar[str] = "verify result"
    status: str
    destination: str | None = None
    run_id: str | None = None
    source: dict[str, Any] | None = None
    check: str | None = None  # "sha1" | "size-only"
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    size_differs: list[str] = field(default_factory=list)
    hash_differs: list[str] = field(default_factory=list)
    files_expected: int = 0
    files_present: int = 0
    bytes_expected: int = 0
    bytes_present: int = 0
    heal_attempts: int = 0
    reason: str | None = None
    stage: str | None = None
    message_id: str | None = None
    manifest: str | None = None
    date: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def from_json(cls, data: bytes | str) -> VerifyResult:
        obj = parse_json_object(data, "verify result")
        check_keys(obj, {f.name for f in dataclasses.fields(cls)}, "verify result")
        return cls(**{k: v for k, v in obj.items() if k != "schema_version"})
