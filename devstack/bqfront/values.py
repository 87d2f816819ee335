"""BigQuery values as its exports write them: type names, CSV/NDJSON text, Avro types.

Moved here from ``shared/gcp/bq_values.py`` (only the local stack writes export files):

- ``field_type`` / ``is_repeated``: canonical legacy type names (INT64 → INTEGER, ...);
- ``json_value`` / ``csv_text``: one value as BigQuery's NEWLINE_DELIMITED_JSON / CSV
  exports write it (INT64 as JSON strings, NUMERIC/BIGNUMERIC as strings without trailing
  zeros, BYTES base64, TIMESTAMP ``2025-01-08 10:00:00.5 UTC``, DATETIME ``2025-01-08T10:00:00``,
  FLOAT64 ``NaN``/``Infinity``/``-Infinity`` as strings in JSON);
- ``avro_schema`` / ``avro_converter``: the Avro schema and values of an extract, with or
  without ``useAvroLogicalTypes``.

Nothing here raises for a value of the declared type; a value of another type (a bug in the
reader) raises TypeError/AttributeError from the conversion.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import math
from collections.abc import Callable
from typing import Any

_ALIASES = {"INT64": "INTEGER", "FLOAT64": "FLOAT", "BOOL": "BOOLEAN", "STRUCT": "RECORD", "BIGDECIMAL": "BIGNUMERIC"}


def field_type(field: Any) -> str:
    """Canonical legacy type name of a SchemaField (INT64 → INTEGER, STRUCT → RECORD, ...)."""
    name = str(field.field_type).upper()
    return _ALIASES.get(name, name)


def is_repeated(field: Any) -> bool:
    """True for mode REPEATED (an ARRAY column)."""
    return str(field.mode or "NULLABLE").upper() == "REPEATED"


def is_nested(field: Any) -> bool:
    """True for a RECORD or REPEATED column (what CSV cannot hold)."""
    return field_type(field) == "RECORD" or is_repeated(field)


# ---- scalar text -------------------------------------------------------------------------------


def decimal_text(value: decimal.Decimal) -> str:
    """NUMERIC/BIGNUMERIC as BigQuery prints them: plain notation, no trailing zeros, never 1E-9."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def float_text(value: float) -> str:
    """FLOAT64 text; the three non-finite values have BigQuery's spellings."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def _seconds_text(value: dt.datetime, sep: str) -> str:
    """ISO date and time to the second, then the fraction without trailing zeros (year 1 is '0001')."""
    text = value.replace(microsecond=0, tzinfo=None).isoformat(sep=sep)
    return text + f".{value.microsecond:06d}".rstrip("0") if value.microsecond else text


def timestamp_text(value: dt.datetime) -> str:
    """TIMESTAMP as exports print it: ``2025-01-08 10:00:00.5 UTC``."""
    return _seconds_text(value.astimezone(dt.UTC) if value.tzinfo else value, " ") + " UTC"


def datetime_text(value: dt.datetime) -> str:
    """DATETIME as exports print it: ``2025-01-08T10:00:00.5``."""
    return _seconds_text(value, "T")


def time_text(value: dt.time) -> str:
    """TIME with the fraction trimmed like the other temporal types."""
    text = value.replace(microsecond=0).isoformat()
    return text + f".{value.microsecond:06d}".rstrip("0") if value.microsecond else text


def scalar_text(kind: str, value: Any) -> str:
    """BigQuery's text of one non-NULL scalar (CSV cells; JSON strings for non-JSON-native types)."""
    if kind in ("NUMERIC", "BIGNUMERIC"):
        return decimal_text(value)
    if kind == "BYTES":
        return base64.b64encode(value).decode("ascii")
    if kind == "TIMESTAMP":
        return timestamp_text(value)
    if kind == "DATETIME":
        return datetime_text(value)
    if kind == "TIME":
        return time_text(value)
    if kind == "DATE":
        return value.isoformat()
    if kind == "BOOLEAN":
        return "true" if value else "false"
    if kind == "FLOAT":
        return float_text(value)
    return str(value)


# ---- JSON ---------------------------------------------------------------------------------------


def json_converter(field: Any) -> Callable[[Any], Any]:
    """NDJSON value of one column: INT64 and decimals as strings, records as objects, arrays as lists.

    A NULL record stays ``null``; a REPEATED field inside it is not visited (nothing to write).
    """
    kind = field_type(field)
    if kind == "RECORD":
        subs = [(f.name, json_converter(f)) for f in field.fields]

        def one(v: Any) -> Any:
            return None if v is None else {name: conv(v.get(name)) for name, conv in subs}
    elif kind == "BOOLEAN":

        def one(v: Any) -> Any:
            return v
    elif kind == "FLOAT":

        def one(v: Any) -> Any:
            return None if v is None else (v if math.isfinite(v) else float_text(v))
    else:

        def one(v: Any) -> Any:
            return None if v is None else scalar_text(kind, v)

    if is_repeated(field):
        return lambda v: [one(x) for x in (v or [])]
    return one


# ---- Avro ---------------------------------------------------------------------------------------

_AVRO_LOGICAL: dict[str, Any] = {
    "DATE": {"type": "int", "logicalType": "date"},
    "TIME": {"type": "long", "logicalType": "time-micros"},
    "DATETIME": {"type": "string", "logicalType": "datetime"},
}
_AVRO_PLAIN: dict[str, Any] = {
    "INTEGER": "long",
    "FLOAT": "double",
    "NUMERIC": {"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 9},
    "BIGNUMERIC": {"type": "bytes", "logicalType": "decimal", "precision": 77, "scale": 38},
    "BYTES": "bytes",
    "BOOLEAN": "boolean",
    "TIMESTAMP": {"type": "long", "logicalType": "timestamp-micros"},
    "JSON": {"type": "string", "sqlType": "JSON"},
}


def avro_schema(schema: list[Any], logical_types: bool = True) -> dict[str, Any]:
    """BigQuery's Avro schema for an extract: record ``Root``, nullable fields as ``["null", T]``."""
    return {"type": "record", "name": "Root", "fields": [_avro_field(f, "Root", logical_types) for f in schema]}


def _avro_field(field: Any, parent: str, logical: bool) -> dict[str, Any]:
    kind = field_type(field)
    base: Any
    if kind == "RECORD":
        name = f"{parent}_{field.name}"
        base = {"type": "record", "name": name, "fields": [_avro_field(f, name, logical) for f in field.fields]}
    elif logical and kind in _AVRO_LOGICAL:
        base = _AVRO_LOGICAL[kind]
    else:
        base = _AVRO_PLAIN.get(kind, "string")
    if is_repeated(field):
        return {"name": field.name, "type": {"type": "array", "items": base}}
    if str(field.mode or "NULLABLE").upper() == "REQUIRED":
        return {"name": field.name, "type": base}
    return {"name": field.name, "type": ["null", base], "default": None}


def avro_converter(field: Any, logical_types: bool = True) -> Callable[[Any], Any]:
    """Python value → what fastavro writes for this field (DATETIME and, without logical types, DATE/TIME as text)."""
    kind = field_type(field)
    one: Callable[[Any], Any]
    if kind == "RECORD":
        subs = [(f.name, avro_converter(f, logical_types)) for f in field.fields]

        def one(v: Any) -> Any:
            return None if v is None else {name: conv(v.get(name)) for name, conv in subs}
    elif kind == "DATETIME" or (not logical_types and kind in ("DATE", "TIME")):

        def one(v: Any) -> Any:
            return None if v is None else scalar_text(kind, v)
    else:

        def one(v: Any) -> Any:
            return v

    if is_repeated(field):
        return lambda v: [one(x) for x in (v or [])]
    return one
