"""The fields of the Pub/Sub message contracts (:mod:`shared.messages`): limits, patterns, the
JSON envelope check, and pydantic field types whose every check names the value and what was
expected. Also used by the config and the HTTP trigger, which check the same names.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ValidationError

from shared.config import FORMATS
from shared.config.types import TABLE_RE
from shared.errors import RejectedInput
from shared.ids import DestinationId
from shared.validation import Problem, describe, show

SCHEMA_VERSION = 1
MAX_DEPTH = 8  # the deepest contract (a result's source) nests 2 levels
MAX_MESSAGE_BYTES = 64 * 1024
# \Z, not $: "$" also matches before a trailing newline, and a run id "r1\n" would pass (and
# name folders and jobs); [0-9], not \d, which takes any script's digits.
IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,1023}\Z")
DATASET_RE = re.compile(r"^[A-Za-z0-9_]{1,1024}\Z")  # BigQuery's dataset ids: no leading-letter rule
RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}\Z")
DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
SHA1_RE = re.compile(r"^[0-9a-f]{40}\Z")


# ---- the one place pydantic errors become RejectedInput -----------------------------------


def rejected(exc: ValidationError, what: str, model: type[BaseModel] | None = None) -> RejectedInput:
    """``what.field.path: value expectation`` for every problem, one line each."""
    return RejectedInput("\n".join(describe(exc, root=what, model=model, unknown="field")))


def nesting_depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (no recursion: a hostile message cannot
    exhaust the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_json_object(data: bytes | str, what: str) -> dict[str, Any]:
    """Size limit, JSON, object, schema_version: checked before any field is looked at."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise RejectedInput(f"{what}: message is {len(data)} bytes; the limit is {MAX_MESSAGE_BYTES}")
    try:
        obj = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RejectedInput(f"{what}: not valid JSON ({exc.__class__.__name__}: {exc})") from None
    except RecursionError:
        raise RejectedInput(
            f"{what}: JSON nested too deeply to parse; messages nest at most {MAX_DEPTH} levels"
        ) from None
    except ValueError:  # json.loads refuses integers longer than Python converts (int_max_str_digits)
        raise RejectedInput(
            f"{what}: a number in the JSON has more than {sys.get_int_max_str_digits()} digits; no field takes one"
        ) from None
    depth = nesting_depth(obj)
    if depth > MAX_DEPTH:
        raise RejectedInput(f"{what}: JSON nested {depth} levels deep; messages nest at most {MAX_DEPTH}")
    if not isinstance(obj, dict):
        raise RejectedInput(f"{what}: expected a JSON object, got {type(obj).__name__}")
    version = obj.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise RejectedInput(f"{what}.schema_version: {version!r} is not supported (expected {SCHEMA_VERSION})")
    return obj


# ---- field types: each check names the value and what was expected ------------------------


def _matching(pattern: re.Pattern[str]) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.match(value):
            raise Problem(f"{show(value)} does not match {pattern.pattern}")
        return value

    return AfterValidator(check)


def _date(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str):
        raise Problem(f"expected a string, got {show(value)}")
    if not DATE_RE.match(value):
        raise Problem(f"{show(value)} is not a date (expected YYYY-MM-DD)")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise Problem(f"{show(value)} is not a valid calendar date") from None


def _format(value: Any) -> Any:
    if not isinstance(value, str):
        raise Problem(f"expected a string, got {show(value)}")
    if value.upper() not in FORMATS:
        raise Problem(f"{show(value)} is not supported; expected one of {', '.join(FORMATS)}")
    return value.upper()


def _name_list(value: Any) -> list[str]:
    """A list of names, or one comma-separated string (seed 000's ``"a,b"``); duplicates dropped."""
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Problem(f"expected a list of strings or a comma-separated string, got {show(value)}"[:300])
    if not value:
        raise Problem("must not be empty")
    return list(dict.fromkeys(value))


def _names_matching(pattern: re.Pattern[str]) -> BeforeValidator:
    """A list of names (or one comma-separated string), each matching ``pattern``."""

    def check(value: Any) -> tuple[str, ...]:
        names = _name_list(value)
        for v in names:
            if not pattern.match(v):
                raise Problem(f"{show(v)} is not a valid name ({pattern.pattern})")
        return tuple(names)

    return BeforeValidator(check)


def _routes(value: Any) -> tuple[DestinationId, ...]:
    try:
        return tuple(DestinationId.parse(v) for v in _name_list(value))
    except Problem:
        raise
    except ValueError as exc:
        raise Problem(str(exc)) from None


Ident = Annotated[str, _matching(IDENT_RE)]
TableName = Annotated[str, _matching(TABLE_RE)]  # BigQuery allows '-' and a leading digit here
DatasetIdent = Annotated[str, _matching(DATASET_RE)]  # BigQuery allows a leading digit here
RunId = Annotated[str, _matching(RUN_ID_RE)]
Sha1 = Annotated[str, _matching(SHA1_RE)]
Date = Annotated[dt.date, BeforeValidator(_date)]
Format = Annotated[str, BeforeValidator(_format)]
Idents = Annotated[tuple[str, ...], _names_matching(IDENT_RE)]
TableNames = Annotated[tuple[str, ...], _names_matching(TABLE_RE)]
Routes = Annotated[tuple[DestinationId, ...], BeforeValidator(_routes)]
# a run folder's prefix in the exports bucket, e.g. "exports/sales/orders/20250108/r1/" (no "..")
RUN_FOLDER_RE = re.compile(r"^(?!.*\.\.)[A-Za-z0-9_./-]{1,1023}/\Z")
RunFolders = Annotated[tuple[str, ...], _names_matching(RUN_FOLDER_RE)]
