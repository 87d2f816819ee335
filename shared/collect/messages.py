"""The collect contracts: ``collect-requests`` and ``collect-files``, parsed as strictly as
export requests (:class:`shared.messages.Message`: unknown fields, wrong types and bad values
are ``RejectedInput`` naming the field, the value and what was expected)."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import AfterValidator, StrictBool, StrictInt

from shared.config.types import PARTNER_RE
from shared.messages import Message, RunId
from shared.validation import Problem


def _job(value: str) -> str:
    if not PARTNER_RE.match(value):  # job names follow the partner-name rule (config)
        raise Problem(f"{value[:80]!r} is not a collect job name (lower-case letters, digits, '-' or '_')")
    return value


def _file_name(value: str) -> str:
    """A path relative to the job's directory: ``a.csv``, or ``sub/a.csv`` for a recursive job."""
    parts = value.split("/")
    if (
        not value
        or any(p in ("", ".", "..") or len(p) > 255 for p in parts)
        or "\\" in value
        or "\x00" in value
        or len(value) > 4096
    ):
        raise Problem(
            f"{value[:80]!r} is not a file path relative to the collected directory "
            "(names joined by '/', none empty, '.' or '..' or over 255 characters)"
        )
    return value


def _not_negative(value: int) -> int:
    if value < 0:
        raise Problem(f"{value!r} must be at least 0")
    return value


JobName = Annotated[str, AfterValidator(_job)]
FileName = Annotated[str, AfterValidator(_file_name)]
Count = Annotated[StrictInt, AfterValidator(_not_negative)]


class CollectRequest(Message):
    """collect-requests: ``{"collect": "toast"}``; ``ignore_calendar`` runs on a non-business day."""

    KIND: ClassVar[str] = "collect request"
    collect: JobName
    run_id: RunId | None = None
    ignore_calendar: StrictBool = False


class CollectFile(Message):
    """collect-files: one file of a job's directory, as listed (its identity: name, size, mtime);
    ``name`` is the path relative to the directory (``sub/a.csv`` in a recursive job)."""

    KIND: ClassVar[str] = "collect file"
    collect: JobName
    run_id: RunId
    name: FileName
    size: Count
    mtime: Count
