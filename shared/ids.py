"""The small typed values that cross module and message boundaries.

- :class:`DestinationId`: ``box``, ``sftp:acme``, ``memory``, ``drive:reports`` — parsed once
  (from config, messages, the CLI) and passed around as a value, so nothing outside a backend
  splits a destination name by prefix.
- :class:`Status`: what a result says (``in_sync``, ``mismatch``, ...).
- :class:`Stage`: which pipeline stage did something.

Both enums are ``StrEnum``: they serialize to the same JSON strings as before and compare
equal to them, so messages on the wire do not change.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

_KIND_RE = re.compile(r"[a-z][a-z0-9_]*\Z")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")

# Kinds whose ids carry an instance name (``sftp:acme``) and kinds that exist once (``box``).
NAMED_KINDS = frozenset({"sftp", "drive"})
SINGLE_KINDS = frozenset({"box", "memory"})


class DestinationId(str):
    """A destination as routed to: its backend kind and, for named kinds, the instance name.

    Like the StrEnums below, it *is* its text (``str`` subclass): it compares equal to
    ``"sftp:acme"``, hashes like it and serializes as it, so messages on the wire and code that
    still handles plain names keep working. New code reads ``.kind`` and ``.name`` instead of
    splitting the text. In pydantic models a ``DestinationId`` field parses its input once.
    """

    __slots__ = ("kind", "name")
    kind: str
    name: str

    def __new__(cls, kind: str, name: str = "") -> DestinationId:
        if not isinstance(kind, str) or not _KIND_RE.match(kind):
            raise ValueError(f"destination kind {kind!r} must be lower-case letters, digits and '_'")
        self = super().__new__(cls, f"{kind}:{name}" if name else kind)
        self.kind = kind
        self.name = name
        return self

    @classmethod
    def parse(cls, text: object) -> DestinationId:
        """``box`` → (box, ""), ``sftp:acme`` → (sftp, acme). ValueError names what was expected."""
        if isinstance(text, DestinationId):
            return text
        if not isinstance(text, str):
            raise ValueError(f"{text!r} is not a destination name (expected {_expected()})")
        kind, sep, name = text.partition(":")
        if kind in SINGLE_KINDS and not sep:
            return cls(kind)
        if kind in NAMED_KINDS and sep and _NAME_RE.match(name):
            return cls(kind, name)
        raise ValueError(f"{text[:80]!r} is not a destination name (expected {_expected()})")

    # repr stays the text's ('sftp:acme'): error messages name the value as they always did.

    def __getnewargs__(self) -> tuple[str, str]:  # type: ignore[override]  # pickle / copy: (kind, name)
        return (self.kind, self.name)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_plain_validator_function(
            cls.parse,
            json_schema_input_schema=core_schema.str_schema(),
            serialization=core_schema.plain_serializer_function_ser_schema(str, when_used="json"),
        )


def _expected() -> str:
    return "one of " + ", ".join(sorted(SINGLE_KINDS)) + ", " + ", ".join(f"{k}:NAME" for k in sorted(NAMED_KINDS))


class Status(StrEnum):
    """What a result on verify-results says."""

    IN_SYNC = "in_sync"
    MISMATCH = "mismatch"
    INCOMPLETE = "incomplete"
    REJECTED = "rejected"
    FAILED = "failed"
    PRUNED = "pruned"  # an older run folder removed by retention (shared.retention), not a failure
    SKIPPED = "skipped"  # a collect run on a day its business calendar excludes
    RESTORE_VERIFIED = "restore_verified"  # a restore drill restored a table and proved it equal
    RESTORE_FAILED = "restore_failed"  # a restore drill could not restore a table, or it differed

    @property
    def is_final_failure(self) -> bool:
        return self in (Status.MISMATCH, Status.INCOMPLETE, Status.REJECTED, Status.FAILED, Status.RESTORE_FAILED)


class Stage(StrEnum):
    """The pipeline stages (each one a deployed function), as a result's ``stage`` names them."""

    FAN_OUT = "fan_out"
    EXPORT_TABLE = "export_table"
    UPLOAD_BOX = "upload_box"
    TRANSFER_SFTP = "transfer_sftp"
    VERIFY = "verify"
    INGEST_SQLITE = "ingest_sqlite"  # SQLite → BigQuery ingest (docs/ingest.md)
    # verify's results say what started them when it was not a receipt or manifest
    VERIFY_REQUEST = "verify:request"
    VERIFY_SWEEP = "verify:sweep"
    VERIFY_RECHECK = "verify:recheck"  # the sweep's daily re-verify of in_sync runs
    PRUNE = "prune"  # retention removed a run folder (`offsite prune`, the sweep's daily pass)
    MIRROR_RECONCILE = "mirror:reconcile"  # a mirrored bucket's reconcile (docs/mirror.md)
    COLLECT_LIST = "collect_list"  # collect: list a partner's directory, one message per new file
    COLLECT_COPY = "collect_copy"  # collect: copy one file to every destination, verified
    RESTORE_DRILL = "restore_drill"  # the scheduled restore drill (shared/restore/drill.py)
