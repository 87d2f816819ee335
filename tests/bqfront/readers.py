"""Independent readers for exported files: csv module, pyarrow (CSV and Parquet), fastavro, json.

Nothing here imports devstack.bqfront: text is parsed back by the BigQuery schema (INT64 strings,
base64 BYTES, "… UTC" timestamps, NaN/Infinity spellings), so the rows compare equal to what
google-cloud-bigquery's ``list_rows`` returns for the source table.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import decimal
import gzip
import io
import json
import math
from typing import Any

import fastavro
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq


def kind(field: Any) -> str:
    name = str(field.field_type).upper()
    return {"INT64": "INTEGER", "FLOAT64": "FLOAT", "BOOL": "BOOLEAN", "STRUCT": "RECORD"}.get(name, name)


def text_bytes(data: bytes) -> str:
    """Text of a CSV/JSON file, gunzipped when it is gzip (magic 1f 8b)."""
    return (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode("utf-8")


def parse_text(field: Any, value: Any) -> Any:
    """One CSV cell / JSON value back to the Python type the BigQuery client returns."""
    k = kind(field)
    if value is None:
        return None
    if k == "RECORD":
        return {f.name: parse_field(f, value.get(f.name)) for f in field.fields}
    if k == "FLOAT":
        return float(value)  # 'NaN', 'Infinity', '-Infinity' or a number
    if not isinstance(value, str):
        return value
    parsers = {
        "INTEGER": int,
        "NUMERIC": decimal.Decimal,
        "BIGNUMERIC": decimal.Decimal,
        "BOOLEAN": lambda v: {"true": True, "false": False}[v],
        "BYTES": base64.b64decode,
        "DATE": dt.date.fromisoformat,
        "DATETIME": dt.datetime.fromisoformat,
        "TIME": dt.time.fromisoformat,
        "TIMESTAMP": _timestamp,
    }
    return parsers.get(k, str)(value)


def _timestamp(text: str) -> dt.datetime:
    assert text.endswith(" UTC"), text
    return dt.datetime.fromisoformat(text[: -len(" UTC")]).replace(tzinfo=dt.UTC)


def parse_field(field: Any, value: Any) -> Any:
    if str(field.mode or "").upper() == "REPEATED":
        return [parse_text(field, v) for v in (value or [])]
    return parse_text(field, value)


def json_rows(data: bytes, schema: list[Any]) -> list[dict[str, Any]]:
    return [
        {f.name: parse_field(f, obj.get(f.name)) for f in schema}
        for obj in (json.loads(line) for line in text_bytes(data).split("\n") if line)
    ]


def csv_module_rows(data: bytes, delimiter: str = ",", header: bool = True) -> list[list[str]]:
    """Rows as Python's csv module reads them (it cannot tell ``""`` from an empty field)."""
    rows = list(csv.reader(io.StringIO(text_bytes(data), newline=""), delimiter=delimiter))
    return rows[1:] if header else rows


def pyarrow_csv_rows(data: bytes, schema: list[Any], delimiter: str = ",") -> list[dict[str, Any]]:
    """Typed rows via pyarrow's CSV reader: an unquoted empty field is NULL, ``""`` the empty string."""
    names = [f.name for f in schema]
    table = pacsv.read_csv(
        io.BytesIO(text_bytes(data).encode()),
        read_options=pacsv.ReadOptions(column_names=names, skip_rows=1),
        parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types={n: pa.string() for n in names},
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )
    return [{f.name: parse_text(f, row[f.name]) for f in schema} for row in table.to_pylist()]


def avro_rows(data: bytes, schema: list[Any]) -> list[dict[str, Any]]:
    """fastavro applies the logical types; DATETIME (an Avro string) and text DATE/TIME are parsed."""
    return [{f.name: parse_field(f, r[f.name]) for f in schema} for r in fastavro.reader(io.BytesIO(data))]


def avro_header(data: bytes) -> tuple[dict[str, Any], str]:
    reader = fastavro.reader(io.BytesIO(data))
    return reader.writer_schema, reader.metadata.get("avro.codec", "null")  # type: ignore[return-value]


def parquet_rows(data: bytes) -> list[dict[str, Any]]:
    return pq.read_table(io.BytesIO(data)).to_pylist()


def read(fmt: str, data: bytes, schema: list[Any]) -> list[dict[str, Any]]:
    if fmt == "PARQUET":
        return parquet_rows(data)
    if fmt == "AVRO":
        return avro_rows(data, schema)
    if fmt == "NEWLINE_DELIMITED_JSON":
        return json_rows(data, schema)
    assert fmt == "CSV"
    return pyarrow_csv_rows(data, schema)


def same(a: Any, b: Any) -> bool:
    """Equality with NaN == NaN, types compared exactly (1 is not 1.0, '' is not None)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def assert_same_rows(actual: list[dict[str, Any]], expected: list[dict[str, Any]], key: str = "id") -> None:
    assert len(actual) == len(expected)
    for got, want in zip(sorted(actual, key=lambda r: r[key]), sorted(expected, key=lambda r: r[key]), strict=True):
        assert same(got, want), f"row differs:\n got  {got}\n want {want}"
