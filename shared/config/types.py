"""The field types the config models share: lists given as one string, ranges, cron, time zones, formats.

Each check raises :class:`~shared.validation.Problem` with a message naming the value and
what was expected; the loader adds the field path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from croniter import croniter
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict
from pydantic_settings import NoDecode

from shared.ids import DestinationId
from shared.validation import Problem, Problems

ExportFormat = Literal["PARQUET", "AVRO", "CSV", "NEWLINE_DELIMITED_JSON"]
FORMATS: tuple[str, ...] = ("PARQUET", "AVRO", "CSV", "NEWLINE_DELIMITED_JSON")
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,1023}$")
# BigQuery's table names also take '-' and a leading digit (and Unicode letters and spaces, which
# offsite's folders, file names and remote commands do not carry: those tables are reported, not exported).
TABLE_RE = re.compile(r"^[A-Za-z0-9_-]{1,1024}\Z")
PARTNER_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")


def bucket_problem(value: str) -> str | None:
    """Why GCS refuses ``value`` as a bucket name (its naming rules), or None."""
    if not BUCKET_RE.fullmatch(value):
        return f"{value!r} is not a valid bucket name (3-63 of a-z 0-9 . _ -)"
    if value.startswith("goog") or "google" in value:
        return f"{value!r}: GCS refuses bucket names beginning with 'goog' or containing 'google'"
    if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", value) or ".." in value or ".-" in value or "-." in value:
        return f"{value!r}: GCS refuses bucket names in IP-address form or with '..', '.-' or '-.'"
    return None


def as_list(value: Any) -> Any:
    """A list field given as one string: ``"a, b"`` (comma-separated) or ``"[a, b]"`` (YAML flow).

    Environment overrides arrive as strings; ``NoDecode`` keeps pydantic-settings from
    insisting on JSON so both forms work there too.
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError:
            pass
    return [v.strip() for v in text.split(",") if v.strip()]


Names = Annotated[tuple[str, ...], BeforeValidator(as_list), NoDecode]
Routes = Annotated[tuple[DestinationId, ...], BeforeValidator(as_list), NoDecode]


def check_partner_names(names: Iterable[str]) -> None:
    """Problem (one per bad name) unless every partner name is lower-case letters, digits, '-' or '_'."""
    problems = Problems()
    for name in names:
        if not PARTNER_RE.match(name):
            problems.add((name,), f"partner name {name!r} must be lower-case letters, digits, '-' or '_'")
    problems.raise_any()


def between(low: int, high: int | None = None) -> AfterValidator:
    def check(value: int) -> int:
        if value < low or (high is not None and value > high):
            raise Problem(
                f"{value!r} must be " + (f"between {low} and {high}" if high is not None else f"at least {low}")
            )
        return value

    return AfterValidator(check)


def matching(pattern: re.Pattern[str], expected: str) -> AfterValidator:
    """Problem ``'VALUE' {expected}`` unless ``pattern`` matches the value."""

    def check(value: str) -> str:
        if not pattern.match(value):
            raise Problem(f"{value!r} {expected}")
        return value

    return AfterValidator(check)


def each_matching(pattern: re.Pattern[str], expected: str) -> AfterValidator:
    """:func:`matching` for every item of a list: one Problem per bad item, at its index."""

    def check(values: tuple[str, ...]) -> tuple[str, ...]:
        problems = Problems()
        for i, value in enumerate(values):
            if not pattern.match(value):
                problems.add((i,), f"{value!r} {expected}")
        problems.raise_any()
        return values

    return AfterValidator(check)


def _cron(value: str | None) -> str | None:
    if value is not None and not croniter.is_valid(value):
        raise Problem(f"{value!r} is not a valid cron expression")
    return value


def _time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise Problem(f"{value!r} is not a known time zone (e.g. 'UTC', 'Europe/Berlin')") from None
    return value


def _format(value: str) -> str:
    if value not in FORMATS:
        raise Problem(f"{value!r} is not a supported format; expected one of {', '.join(FORMATS)}")
    return value


_DAYS_BACK_RE = re.compile(r"^-(\d{1,4})$")


def days_back(value: str) -> int:
    """``today`` → 0, ``yesterday`` → 1, ``-N`` → N: how many days before the scheduled day to export."""
    if value == "today":
        return 0
    if value == "yesterday":
        return 1
    match = _DAYS_BACK_RE.match(value)
    if match is None:
        raise Problem(f"{value!r} is not a day; expected today, yesterday or -N (N days back, e.g. -2)")
    return int(match.group(1))


def _relative_day(value: str) -> str:
    days_back(value)
    return value


Cron = Annotated[str, AfterValidator(_cron)]
RelativeDay = Annotated[str, AfterValidator(_relative_day)]
TimeZone = Annotated[str, AfterValidator(_time_zone)]
Format = Annotated[str, AfterValidator(_format)]
DATASET_RE = re.compile(r"^[A-Za-z0-9_]{1,1024}$")  # BigQuery's rule: no leading letter needed (2024_sales)
DatasetId = Annotated[str, matching(DATASET_RE, "is not a valid BigQuery dataset id")]


class Model(BaseModel):
    """Base of every config model: frozen, strict about keys, numbers accepted where text is."""

    model_config = ConfigDict(frozen=True, extra="forbid", coerce_numbers_to_str=True)
