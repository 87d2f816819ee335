"""The collect contracts: ``collect-requests`` and ``collect-files``, parsed as strictly as
export requests (:class:`shared.messages.Message`: unknown fields, wrong types and bad values
are ``RejectedInput`` naming the field, the value and what was expected)."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import AfterValidator, StrictBool, StrictInt

from shared.config.types import PARTNER_RE
from shared.message_fields import RunId
from shared.messages import Message
from shared.validation import Problem


def _job(value: str) -> str:
    if not PARTNER_RE.match(value):  # job names follow the partner-name rule (config)
        raise Problem(f"{value[:80]!r} is not a collect job name (lower-case letters, digits, '-' or '_')")
    return value


def file_name_problem(value: str) -> str | None:
    """Why ``value`` cannot be a collected file's path (relative to the job's directory:
    ``a.csv``, or ``sub/a.csv`` for a recursive job), or None when it can. The listing skips
    such files rather than fail the whole job on them (:mod:`shared.collect.selection`)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "the name is not UTF-8 (its bytes are of another encoding, e.g. Latin-1)"
    if "\\" in value:
        return "the name holds a backslash ('\\'), which Box refuses and Windows tools read as a folder separator"
    if "\x00" in value:
        return "the name holds a NUL character"
    if not value or any(p in ("", ".", "..") for p in value.split("/")):
        return "names are joined by '/', none empty, '.' or '..'"
    if len(value) > 4096 or any(len(p) > 255 for p in value.split("/")):
        return "a name is over 255 characters or the path over 4096"
    return None


def printable(name: str) -> str:
    """A listed name as it can be shown: bytes that are not UTF-8 (kept by the listing as
    surrogates) written as ``\\xe9``."""
    try:
        raw = name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate no listing makes (a message's JSON "\\ud800")
        return name.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def _file_name(value: str) -> str:
    problem = file_name_problem(value)
    if problem is not None:
        raise Problem(f"{printable(value)[:80]!r} is not a file path relative to the collected directory: {problem}")
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
