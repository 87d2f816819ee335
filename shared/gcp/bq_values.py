"""BigQuery values as its exports write them: type names, text for CSV/NDJSON, Avro types.

- ``field_type``: canonical legacy type names (INT64 → INTEGER, STRUCT → RECORD, ...);
- ``text_column``: one column as CSV or NDJSON values (INT64 as JSON strings, BYTES base64,
  TIMESTAMP ``2025-01-08 10:00:00.5 UTC``, DATETIME ``2025-01-08T10:00:00``, NUMERIC without
  trailing zeros); scalar columns are converted by Arrow, values inside records in Python —
  tests check that both give the same text;
- ``avro_schema`` / ``avro_converter``: Avro with logical types (use_avro_logical_types).
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import math
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

_ALIASES = {"INT64": "INTEGER", "FLOAT64": "FLOAT", "BOOL": "BOOLEAN", "STRUCT": "RECORD", "BIGDECIMAL": "BIGNUMERIC"}


def field_type(field: Any) -> str:
    """Canonical legacy type name of a SchemaField (INT64 → INTEGER, STRUCT → RECORD, ...)."""
    name = str(field.field_type).upper()
    return _ALIASES.get(name, name)


def is_repeated(field: Any) -> bool:
    return str(field.mode or "NULLABLE").upper() == "REPEATED"


# ---- text renderings (CSV / JSON / Avro DATETIME) --------------------------------------------


def _decimal_text(value: decimal.Decimal) -> str:
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _float_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def _seconds_text(value: dt.datetime, sep: str) -> str:
    """ISO date and time to the second, then the fraction without trailing zeros (year 1 is '0001')."""
    text = value.replace(microsecond=0, tzinfo=None).isoformat(sep=sep)
    return text + f".{value.microsecond:06d}".rstrip("0") if value.microsecond else text


def _timestamp_text(value: dt.datetime) -> str:
    return _seconds_text(value.astimezone(dt.UTC) if value.tzinfo else value, " ") + " UTC"


def _datetime_text(value: dt.datetime) -> str:
    return _seconds_text(value, "T")


def _scalar_text(kind: str) -> Callable[[Any], Any]:
    """Converter for CSV and JSON: BigQuery's textual form of one scalar value."""
    return {
        "NUMERIC": _decimal_text,
        "BIGNUMERIC": _decimal_text,
        "BYTES": lambda v: base64.b64encode(v).decode("ascii"),
        "DATE": lambda v: v.isoformat(),
        "DATETIME": _datetime_text,
        "TIMESTAMP": _timestamp_text,
        "TIME": lambda v: v.isoformat(),
    }.get(kind, lambda v: v)


def _json_converter(field: Any) -> Callable[[Any], Any]:
    """NDJSON value: INT64 as a string (BigQuery keeps 64-bit precision), records as objects."""
    kind = field_type(field)
    if kind == "RECORD":
        subs = [(f.name, _json_converter(f)) for f in field.fields]

        def one(v: Any) -> Any:
            return None if v is None else {name: conv(v.get(name)) for name, conv in subs}
    elif kind == "INTEGER":

        def one(v: Any) -> Any:
            return None if v is None else str(v)
    elif kind == "FLOAT":

        def one(v: Any) -> Any:
            return None if v is None else (v if math.isfinite(v) else _float_text(v))
    else:
        text = _scalar_text(kind)

        def one(v: Any) -> Any:
            return None if v is None else text(v)

    if is_repeated(field):
        return lambda v: [one(x) for x in (v or [])]
    return one


def _csv_converter(field: Any) -> Callable[[Any], str]:
    kind = field_type(field)
    text = _scalar_text(kind)
    if kind == "BOOLEAN":
        return lambda v: "" if v is None else ("true" if v else "false")
    if kind == "FLOAT":
        return lambda v: "" if v is None else _float_text(v)
    return lambda v: "" if v is None else str(text(v))


# ---- Avro schema and values (BigQuery's extract with use_avro_logical_types) -------------------


def avro_schema(schema: list[Any]) -> dict[str, Any]:
    return {"type": "record", "name": "Root", "fields": [_avro_field(f, "Root") for f in schema]}


def _avro_field(field: Any, parent: str) -> dict[str, Any]:
    kind = field_type(field)
    if kind == "RECORD":
        name = f"{parent}_{field.name}"
        base: Any = {"type": "record", "name": name, "fields": [_avro_field(f, name) for f in field.fields]}
    else:
        base = {
            "INTEGER": "long",
            "FLOAT": "double",
            "NUMERIC": {"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 9},
            "BIGNUMERIC": {"type": "bytes", "logicalType": "decimal", "precision": 77, "scale": 38},
            "BYTES": "bytes",
            "BOOLEAN": "boolean",
            "DATE": {"type": "int", "logicalType": "date"},
            "DATETIME": {"type": "string", "logicalType": "datetime"},
            "TIMESTAMP": {"type": "long", "logicalType": "timestamp-micros"},
            "TIME": {"type": "long", "logicalType": "time-micros"},
        }.get(kind, "string")
    if is_repeated(field):
        return {"name": field.name, "type": {"type": "array", "items": base}}
    if str(field.mode or "NULLABLE").upper() == "REQUIRED":
        return {"name": field.name, "type": base}
    return {"name": field.name, "type": ["null", base], "default": None}


def avro_converter(field: Any) -> Callable[[Any], Any]:
    """Only DATETIME needs converting (a string in BigQuery's Avro); records recurse for that."""
    kind = field_type(field)
    if kind == "RECORD":
        subs = [(f.name, avro_converter(f)) for f in field.fields]

        def one(v: Any) -> Any:
            return None if v is None else {name: conv(v.get(name)) for name, conv in subs}
    elif kind == "DATETIME":

        def one(v: Any) -> Any:
            return None if v is None else _datetime_text(v)
    else:
        return (lambda v: v or []) if is_repeated(field) else (lambda v: v)
    if is_repeated(field):
        return lambda v: [one(x) for x in (v or [])]
    return one


def _strip_fraction(strings: Any) -> Any:
    """'…10.500000' → '…10.5', '…10.000000' → '…10' (BigQuery prints no trailing zeros)."""
    strings = pc.replace_substring_regex(strings, r"\.0+$", "")
    return pc.replace_substring_regex(strings, r"(\.\d*[1-9])0+$", r"\1")


def _vector_text(kind: str, column: Any) -> Any:
    """A string array of BigQuery's text for one scalar column, computed by Arrow (nulls stay null)."""
    if kind == "DATETIME":
        return _strip_fraction(pc.strftime(column, format="%Y-%m-%dT%H:%M:%S"))
    if kind == "TIMESTAMP":
        text = _strip_fraction(pc.strftime(column, format="%Y-%m-%d %H:%M:%S"))
        return pc.binary_join_element_wise(text, pa.scalar(" UTC"), "")
    return pc.cast(column, pa.string())


def text_column(field: Any, column: Any, *, json_style: bool) -> list[Any]:
    """One column as Python values ready for csv.writer (strings, '' for NULL) or json.dumps."""
    kind = field_type(field)
    if is_repeated(field) or kind == "RECORD":
        conv = _json_converter(field) if json_style else _csv_converter(field)
        return [conv(v) for v in column.to_pylist()]
    if kind == "FLOAT":
        if json_style:
            return [v if v is None or math.isfinite(v) else _float_text(v) for v in column.to_pylist()]
        return ["" if v is None else _float_text(v) for v in column.to_pylist()]
    if kind == "BOOLEAN" and json_style:
        return column.to_pylist()
    if kind == "BYTES":
        values = [None if v is None else base64.b64encode(v).decode("ascii") for v in column.to_pylist()]
    elif kind in ("NUMERIC", "BIGNUMERIC"):  # Arrow prints small decimals as 1E-9; BigQuery never does
        values = [None if v is None else _decimal_text(v) for v in column.to_pylist()]
    else:
        values = _vector_text(kind, column).to_pylist()
    return values if json_style else ["" if v is None else v for v in values]
