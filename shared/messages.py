"""Pub/Sub message contracts (DESIGN.md): frozen pydantic models with schema_version and strict parsing.

Every ``from_json`` raises :class:`RejectedInput` naming the field path, the value and what
was expected (one line per problem); bad input is never retried. Table
names, dates and run ids are checked against strict patterns, so nothing SQL-looking ever
reaches a query. Destinations are :class:`~shared.ids.DestinationId` (parsed once, written
back as the same strings), statuses :class:`~shared.ids.Status` and stages
:class:`~shared.ids.Stage` (StrEnums: the JSON is unchanged).

``to_dict``/``to_json`` write what the dataclass versions wrote: ``None`` fields are left
out (except a result's ``reason``), dates as ``YYYY-MM-DD``, keys sorted.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from shared.ids import DestinationId, Stage, Status
from shared.message_fields import (
    SCHEMA_VERSION,
    DatasetIdent,
    Date,
    Format,
    Ident,
    Routes,
    RunFolders,
    RunId,
    Sha1,
    TableName,
    TableNames,
    parse_json_object,
    rejected,
)
from shared.validation import Problem

ResultStatus = Status  # the type of VerifyResult.status (was a Literal of the same strings)

RECHECK_BATCH = 50  # run folders in one recheck request


class Message(BaseModel):
    """JSON encoding, strict parsing and the ``schema_version`` field shared by every contract."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    KIND: ClassVar[str] = "message"
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def from_json(cls, data: bytes | str) -> Self:
        return cls.from_obj(parse_json_object(data, cls.KIND))

    @classmethod
    def from_obj(cls, obj: dict[str, Any]) -> Self:
        """Validate an already-decoded object; RejectedInput names each bad field."""
        try:
            return cls.model_validate(obj)
        except ValidationError as exc:
            raise rejected(exc, cls.KIND, cls) from None

    def to_dict(self) -> dict[str, Any]:
        plain: dict[str, Any] = _plain(self.model_dump(mode="json"))
        return plain

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None or k in ("reason",)}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# ---- contracts -----------------------------------------------------------------------------


class ExportRequest(Message):
    """export-requests: dataset mode (``dataset``) or query mode (``export``), never both."""

    KIND: ClassVar[str] = "export request"
    dataset: DatasetIdent | None = None
    tables: TableNames | None = None
    export: Ident | None = None
    date: Date | None = None
    destinations: Routes | None = None
    format: Format | None = None
    run_id: RunId | None = None

    @model_validator(mode="after")
    def _one_mode(self) -> ExportRequest:
        if self.dataset and self.export:
            raise Problem("give either 'dataset' or 'export', not both")
        if not self.dataset and not self.export:
            raise Problem("one of 'dataset' (whole tables) or 'export' (a configured query) is required")
        if self.export and self.tables:
            raise Problem("only valid with 'dataset', not with 'export'", ("tables",))
        return self


class Source(BaseModel):
    """What a run exports: one table (dataset mode) or one configured query (query mode).

    ``project`` may be empty where it is not known (a run folder parsed from an object name);
    a result's ``source`` then leaves it out, as before.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    mode: Literal["table", "query", "bucket", "collect"]
    project: str = ""
    dataset: DatasetIdent | None = None
    table: TableName | None = None
    export: Ident | None = None
    bucket: str | None = None
    """mode ``bucket``: a mirrored GCS bucket (docs/mirror.md); only results name one."""
    collect: str | None = None  # mode "collect": the collect job (shared/collect)

    @model_validator(mode="after")
    def _mode_fields(self) -> Source:
        needed = {"table": ("dataset", "table"), "query": ("export",), "bucket": ("bucket",), "collect": ("collect",)}[
            self.mode
        ]
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise Problem("required field is missing", (missing[0],))
        return self

    @property
    def label(self) -> str:
        """``sales.orders`` or ``export:product_data``: how logs, alerts and reports name a run's source."""
        if self.mode == "bucket":
            return f"gs://{self.bucket}"
        if self.mode == "collect":
            return f"collect:{self.collect}"
        return f"{self.dataset}.{self.table}" if self.mode == "table" else f"export:{self.export}"

    def to_dict(self) -> dict[str, Any]:
        """The fields that are set (a result's ``source``; log context)."""
        return {k: v for k, v in self.model_dump().items() if v not in (None, "")}

    @classmethod
    def from_dict(cls, obj: Any, what: str) -> Source:
        try:
            return cls.model_validate(obj)
        except ValidationError as exc:
            raise rejected(exc, what, cls) from None


class TableExport(Message):
    """table-exports: one table (or query) to export in one run."""

    KIND: ClassVar[str] = "table export"
    run_id: RunId
    date: Date
    source: Source
    format: Format
    destinations: Routes = ()
    prefix: str
    file_name: str = "part-*"

    @model_validator(mode="after")
    def _source_project(self) -> TableExport:
        if not self.source.project:
            raise Problem("required field is missing", ("source", "project"))
        return self

    @field_validator("source", mode="before")
    @classmethod
    def _exported_mode(cls, value: Any) -> Any:
        """A bucket (a mirror's results) is a Source too, but nothing exports one."""
        mode = value.get("mode") if isinstance(value, dict) else getattr(value, "mode", None)
        if mode is not None and mode not in ("table", "query"):
            raise Problem(f"{mode!r} is not 'table' or 'query'", ("mode",))
        return value


class DeliveryReceipt(Message):
    """deliveries: one file delivered (or found unchanged) at one destination."""

    KIND: ClassVar[str] = "delivery receipt"
    run_id: RunId
    bucket: str
    object: str
    generation: StrictInt
    destination: DestinationId
    remote_path: str
    size: StrictInt
    sha1: Sha1
    status: str = "uploaded"
    remote_id: str | None = None


class VerifyRequest(Message):
    """verify-requests: ``{run_id}``, ``{dataset, table, date}``, ``{export, date}``,
    ``{sweep: true}``, or ``{recheck: [run folder, …], destination}`` (the sweep's daily recheck
    of in_sync runs, handed to other verify instances when its own time is spent)."""

    KIND: ClassVar[str] = "verify request"
    run_id: RunId | None = None
    dataset: DatasetIdent | None = None
    table: Ident | None = None
    export: Ident | None = None
    date: Date | None = None
    destination: DestinationId | None = None
    sweep: StrictBool = False
    recheck: RunFolders | None = None

    @model_validator(mode="after")
    def _one_form(self) -> VerifyRequest:
        forms = [bool(self.sweep), bool(self.run_id), bool(self.dataset or self.table), bool(self.export)]
        if sum(forms) + bool(self.recheck) != 1:
            raise Problem("give exactly one of run_id, dataset+table+date, export+date, or sweep: true")
        if (self.dataset or self.table) and not (self.dataset and self.table and self.date):
            raise Problem("dataset, table and date are required together")
        if self.export and not self.date:
            raise Problem("required with 'export'", ("date",))
        if self.recheck and self.destination is None:
            raise Problem("required with 'recheck'", ("destination",))
        if self.recheck and len(self.recheck) > RECHECK_BATCH:
            raise Problem(f"at most {RECHECK_BATCH} run folders, got {len(self.recheck)}", ("recheck",))
        return self


class VerifyResult(Message):
    """verify-results: one per (run, destination) once complete, plus rejected/failed reports.

    ``source`` is a :class:`Source` (a dict with its fields is accepted and converted); on
    the wire it is the object of its set fields, as before.
    """

    KIND: ClassVar[str] = "verify result"
    status: Status
    destination: DestinationId | None = None
    run_id: str | None = None
    source: Source | None = None
    check: str | None = None  # "sha1" | "size-only"
    missing: list[str] = Field(default_factory=list)
    extra: list[str] = Field(default_factory=list)
    size_differs: list[str] = Field(default_factory=list)
    hash_differs: list[str] = Field(default_factory=list)
    files_expected: StrictInt = 0
    files_present: StrictInt = 0
    bytes_expected: StrictInt = 0
    bytes_present: StrictInt = 0
    heal_attempts: StrictInt = 0
    reason: str | None = None
    stage: Stage | None = None
    message_id: str | None = None
    request_id: str | None = None  # a mirror reconcile's: the request_id its caller gave it
    manifest: str | None = None
    date: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    # ingest results (stage ingest_sqlite): rows read from SQLite, rows merged, the watermark as JSON
    rows_read: StrictInt | None = None
    rows_merged: StrictInt | None = None
    watermark: str | None = None

    @field_serializer("source")
    def _source_fields(self, source: Source | None) -> dict[str, Any] | None:
        return source.to_dict() if source is not None else None

    def differences(self) -> tuple[tuple[str, list[str]], ...]:
        """What the check found wrong, by kind: (title, file names) for each kind, empty ones too."""
        return (
            ("missing", self.missing),
            ("extra", self.extra),
            ("size differs", self.size_differs),
            ("hash differs", self.hash_differs),
        )
