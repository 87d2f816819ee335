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
from dataclasses import dataclass
from enum import StrEnum

_KIND_RE = re.compile(r"[a-z][a-z0-9_]*\Z")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")

# Kinds whose ids carry an instance name (``sftp:acme``) and kinds that exist once (``box``).
NAMED_KINDS = frozenset({"sftp", "drive"})
SINGLE_KINDS = frozenset({"box", "memory"})


@dataclass(frozen=True, order=True)
class DestinationId:
    """A destination as routed to: its backend kind and, for named kinds, the instance name."""

    kind: str
    name: str = ""

    @classmethod
    def parse(cls, text: str) -> DestinationId:
        """``box`` → (box, ""), ``sftp:acme`` → (sftp, acme). ValueError names what was expected."""
        if not isinstance(text, str):
            raise ValueError(f"{text!r} is not a destination name (expected 'box' or 'sftp:NAME')")
        kind, sep, name = text.partition(":")
        if kind in SINGLE_KINDS and not sep:
            return cls(kind)
        if kind in NAMED_KINDS and sep and _NAME_RE.match(name):
            return cls(kind, name)
        expected = ", ".join(sorted(SINGLE_KINDS)) + ", " + ", ".join(f"{k}:NAME" for k in sorted(NAMED_KINDS))
        raise ValueError(f"{text!r} is not a destination name (expected one of {expected})")

    def __post_init__(self) -> None:
        if not _KIND_RE.match(self.kind):
            raise ValueError(f"destination kind {self.kind!r} must be lower-case letters, digits and '_'")

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}" if self.name else self.kind


class Status(StrEnum):
    """What a result on verify-results says."""

    IN_SYNC = "in_sync"
    MISMATCH = "mismatch"
    INCOMPLETE = "incomplete"
    REJECTED = "rejected"
    FAILED = "failed"

    @property
    def is_final_failure(self) -> bool:
        return self in (Status.MISMATCH, Status.INCOMPLETE, Status.REJECTED, Status.FAILED)


class Stage(StrEnum):
    """The pipeline stages (each one a deployed function)."""

    FAN_OUT = "fan_out"
    EXPORT_TABLE = "export_table"
    UPLOAD_BOX = "upload_box"
    TRANSFER_SFTP = "transfer_sftp"
    VERIFY = "verify"
