"""SQLite declared types and values → BigQuery types and values.

SQLite stores any value in any column (its "affinity" only prefers one), so the BigQuery type
is chosen from the declared type and the column name, and every value is checked against it:
a value the type cannot hold (text in an INTEGER column, a non-date in a TIMESTAMP column)
raises :class:`BadValue` naming what was expected. Nothing is silently cast.

Mapping (first rule that applies):
1. a type in the table's ``types`` config; a hashed column is STRING; a ``json_columns`` one JSON;
2. declared BOOL/BOOLEAN → BOOL, DATE → DATE, DATETIME → DATETIME, TIMESTAMP → TIMESTAMP,
   TIME → TIME, JSON → JSON, DECIMAL/NUMERIC(…) → NUMERIC;
3. seed 002's name rule: a name ending in one of ``timestamp_suffixes`` → TIMESTAMP;
4. SQLite affinity: INT → INT64; CHAR/CLOB/TEXT → STRING; BLOB → BYTES; REAL/FLOA/DOUB →
   FLOAT64; no declared type → STRING; anything else (NUMERIC affinity) → NUMERIC.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

BQ_TYPES = ("INT64", "FLOAT64", "NUMERIC", "STRING", "BYTES", "BOOL", "DATE", "DATETIME", "TIMESTAMP", "TIME", "JSON")
# BigQuery's own aliases, as the API may report them.
ALIASES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL", "DECIMAL": "NUMERIC"}
# A target column of the left type can take values of the right type: what a SQLite type change may widen to.
WIDENINGS = {("FLOAT64", "INT64"), ("NUMERIC", "INT64")}  # BigQuery coerces INT64 in these assignments
NUMERIC_SCALE = 9
NUMERIC_MAX = decimal.Decimal("1e29")


class BadValue(ValueError):
    """A SQLite value a BigQuery type cannot hold; the message says what was expected."""


def canonical(bq_type: str) -> str:
    upper = bq_type.upper()
    return ALIASES.get(upper, upper)


def sqlite_affinity(declared: str) -> str:
    """SQLite's affinity rules (https://sqlite.org/datatype3.html §3.1), in their order."""
    upper = declared.upper()
    if "INT" in upper:
        return "INTEGER"
    if any(s in upper for s in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if "BLOB" in upper or not upper.strip():
        return "BLOB"
    if any(s in upper for s in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


_DECLARED = {
    "BOOL": "BOOL",
    "BOOLEAN": "BOOL",
    "DATE": "DATE",
    "DATETIME": "DATETIME",
    "TIMESTAMP": "TIMESTAMP",
    "TIME": "TIME",
    "JSON": "JSON",
    "DECIMAL": "NUMERIC",
    "NUMERIC": "NUMERIC",
}
_BY_AFFINITY = {"INTEGER": "INT64", "TEXT": "STRING", "BLOB": "BYTES", "REAL": "FLOAT64", "NUMERIC": "NUMERIC"}


def bigquery_type(column: str, declared: str, timestamp_suffixes: tuple[str, ...]) -> str:
    """The BigQuery type of a SQLite column from its declared type and name (rules 2-4 above)."""
    word = re.split(r"[\s(]", declared.strip().upper(), maxsplit=1)[0]
    if word in _DECLARED:
        return _DECLARED[word]
    if any(column.lower().endswith(s.lower()) for s in timestamp_suffixes):
        return "TIMESTAMP"
    if not declared.strip():
        return "STRING"
    return _BY_AFFINITY[sqlite_affinity(declared)]


# ---- values ---------------------------------------------------------------------------------

_T = TypeVar("_T")
_TS = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$"
)


def _parse_datetime(text: str) -> tuple[dt.datetime, bool]:
    """ISO 8601 text (``T`` or space, optional seconds, fraction and zone) → (datetime, had a zone)."""
    m = _TS.match(text.strip())
    if not m:
        raise BadValue("expected an ISO 8601 date/time such as '2025-01-08 10:00:00' or '2025-01-08T10:00:00Z'")
    year, month, day, hour, minute, second, frac, zone = m.groups()
    micros = int((frac or "0")[:6].ljust(6, "0"))
    tz: dt.tzinfo | None = None
    if zone:
        if zone == "Z":
            tz = dt.UTC
        else:
            sign = -1 if zone[0] == "-" else 1
            digits = zone[1:].replace(":", "")
            hours, minutes = int(digits[:2]), int(digits[2:])
            if hours > 23 or minutes > 59:  # dt.timezone refuses ±24:00 and beyond
                raise BadValue("expected a UTC offset within ±23:59")
            tz = dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))
    try:
        value = dt.datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), micros, tz
        )
    except ValueError as exc:
        raise BadValue(f"expected a valid date/time ({exc})") from None
    return value, zone is not None


def _int(v: Any) -> int:
    if isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63:
        return v
    raise BadValue("expected an integer (INT64)")


def _float(v: Any) -> float:
    if isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)
    raise BadValue("expected a number (FLOAT64)")


def _numeric(v: Any) -> decimal.Decimal:
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise BadValue("expected a decimal number (NUMERIC)")
    try:
        d = decimal.Decimal(str(v).strip())
    except decimal.InvalidOperation:
        raise BadValue("expected a decimal number (NUMERIC)") from None
    if not d.is_finite() or abs(d) >= NUMERIC_MAX:
        raise BadValue("expected a finite NUMERIC below 1e29")
    exponent = d.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -NUMERIC_SCALE:
        raise BadValue(f"expected at most {NUMERIC_SCALE} decimal places (NUMERIC)")
    return d


def _string(v: Any) -> str:
    if isinstance(v, str):
        return v
    raise BadValue("expected text (STRING)")


def _bytes(v: Any) -> bytes:
    if isinstance(v, bytes):
        return v
    raise BadValue("expected a BLOB (BYTES)")


_TRUE = {"1", "true", "t", "yes", "y"}
_FALSE = {"0", "false", "f", "no", "n"}


def _bool(v: Any) -> bool:
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in _TRUE | _FALSE:
        return v.strip().lower() in _TRUE
    raise BadValue("expected a boolean (0, 1, 'true' or 'false')")


def _timestamp(v: Any) -> dt.datetime:
    if isinstance(v, int | float) and not isinstance(v, bool):
        try:
            return dt.datetime.fromtimestamp(v, dt.UTC)
        except (OverflowError, OSError, ValueError):
            raise BadValue("expected Unix seconds within 0001-9999") from None
    if isinstance(v, str):
        value, zoned = _parse_datetime(v)
        try:
            return value.astimezone(dt.UTC) if zoned else value.replace(tzinfo=dt.UTC)
        except OverflowError:  # an offset that moves 0001-01-01 or 9999-12-31 out of range
            raise BadValue("expected a time within years 1–9999 in UTC") from None
    raise BadValue("expected an ISO 8601 timestamp or Unix seconds (TIMESTAMP)")


def _datetime(v: Any) -> dt.datetime:
    if isinstance(v, str):
        value, zoned = _parse_datetime(v)
        if zoned:
            raise BadValue("expected a date/time without a zone (DATETIME); declare it TIMESTAMP")
        return value
    raise BadValue("expected an ISO 8601 date/time (DATETIME)")


def _iso_text(parse: Callable[[str], _T], expected: str) -> Callable[[Any], _T]:
    """A converter of ISO 8601 text read by ``parse``; anything else is BadValue(``expected``)."""

    def convert(v: Any) -> _T:
        if isinstance(v, str):
            try:
                return parse(v.strip())
            except ValueError:
                pass
        raise BadValue(expected)

    return convert


_date = _iso_text(dt.date.fromisoformat, "expected a date 'YYYY-MM-DD' (DATE)")
_time = _iso_text(dt.time.fromisoformat, "expected a time 'HH:MM:SS' (TIME)")


def _json(v: Any) -> str:
    if isinstance(v, str):
        try:
            json.loads(v)
        except ValueError:
            raise BadValue("expected JSON text (JSON)") from None
        return v
    raise BadValue("expected JSON text (JSON)")


CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "INT64": _int,
    "FLOAT64": _float,
    "NUMERIC": _numeric,
    "STRING": _string,
    "BYTES": _bytes,
    "BOOL": _bool,
    "TIMESTAMP": _timestamp,
    "DATETIME": _datetime,
    "DATE": _date,
    "TIME": _time,
    "JSON": _json,
}


def convert(bq_type: str, value: Any) -> Any:
    """A SQLite value as the Python value BigQuery's ``bq_type`` holds; None stays None.

    Raises :class:`BadValue` when the type cannot hold the value.
    """
    if value is None:
        return None
    return CONVERTERS[bq_type](value)


def arrow_type(bq_type: str) -> Any:
    """The Arrow type a staging Parquet file uses for a column (JSON travels as text)."""
    import pyarrow as pa

    return {
        "INT64": pa.int64(),
        "FLOAT64": pa.float64(),
        "NUMERIC": pa.decimal128(38, NUMERIC_SCALE),
        "STRING": pa.string(),
        "JSON": pa.string(),
        "BYTES": pa.binary(),
        "BOOL": pa.bool_(),
        "TIMESTAMP": pa.timestamp("us", tz="UTC"),
        "DATETIME": pa.timestamp("us"),
        "DATE": pa.date32(),
        "TIME": pa.time64("us"),
    }[bq_type]


def staging_type(bq_type: str) -> str:
    """The staging table's type: JSON is staged as STRING and parsed by the MERGE/INSERT."""
    return "STRING" if bq_type == "JSON" else bq_type


def compatible(target: str, source: str) -> bool:
    """Whether a target column of type ``target`` can keep receiving ``source`` values."""
    target, source = canonical(target), canonical(source)
    return target == source or (target, source) in WIDENINGS
