"""Read BigQuery-shaped files back into typed Python rows, independently of the writer's code
(devstack/bqfront/formats.py): the tests read exports with it, and the front's load jobs use it
to hand bqemulator what it can load faithfully (Parquet).

Parquet is read with pyarrow, Avro with fastavro, CSV and NDJSON with the standard library;
text values are parsed back by the BigQuery schema (INT64 strings, base64 BYTES, "… UTC"
timestamps), so the rows compare equal to what BigQuery returns for the source table.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import gzip
import io
import json
from typing import Any

import fastavro
import pyarrow.parquet as pq


def _kind(field: dict[str, Any]) -> str:
    t = field["type"].upper()
    return {"INT64": "INTEGER", "FLOAT64": "FLOAT", "BOOL": "BOOLEAN", "STRUCT": "RECORD"}.get(t, t)


def _parse_timestamp(text: str) -> dt.datetime:
    assert text.endswith(" UTC"), text
    return dt.datetime.fromisoformat(text[: -len(" UTC")]).replace(tzinfo=dt.UTC)


def parse_scalar(kind: str, value: Any) -> Any:
    """Text (CSV/JSON, Avro DATETIME) → the Python type BigQuery's client returns; typed values pass."""
    if value is None:
        return None
    if not isinstance(value, str) and not (kind == "FLOAT" and isinstance(value, int)):
        return value
    if kind == "INTEGER":
        return int(value)
    if kind == "FLOAT":
        return float(value)
    if kind in ("NUMERIC", "BIGNUMERIC"):
        return decimal.Decimal(value)
    if kind == "BOOLEAN":
        return value if isinstance(value, bool) else {"true": True, "false": False}[value]
    if kind == "BYTES":
        return base64.b64decode(value)
    if kind == "DATE":
        return dt.date.fromisoformat(value)
    if kind == "DATETIME":
        return dt.datetime.fromisoformat(value)
    if kind == "TIMESTAMP":
        return value if isinstance(value, dt.datetime) else _parse_timestamp(value)
    return value


def parse_value(field: dict[str, Any], value: Any) -> Any:
    kind = _kind(field)
    if field.get("mode", "NULLABLE").upper() == "REPEATED":
        item = dict(field, mode="NULLABLE")
        return [parse_value(item, v) for v in (value or [])]
    if kind == "RECORD":
        if value is None:
            return None
        return {f["name"]: parse_value(f, value.get(f["name"])) for f in field["fields"]}
    return parse_scalar(kind, value)


def parse_row(schema: list[dict[str, Any]], row: dict[str, Any]) -> dict[str, Any]:
    return {f["name"]: parse_value(f, row.get(f["name"])) for f in schema}


def read_rows(fmt: str, data: bytes, schema: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Typed rows of one exported file."""
    if fmt == "PARQUET":
        return pq.read_table(io.BytesIO(data)).to_pylist()
    if fmt == "AVRO":
        records = list(fastavro.reader(io.BytesIO(data)))
        return [parse_row(schema, r) for r in records]
    text = gzip.decompress(data).decode("utf-8")
    if fmt == "NEWLINE_DELIMITED_JSON":
        return [parse_row(schema, json.loads(line)) for line in text.splitlines() if line]
    assert fmt == "CSV"
    records = csv_records(text)
    header = records[0]
    assert header == [f["name"] for f in schema]
    return [parse_row(schema, dict(zip(header, line, strict=True))) for line in records[1:]]


def csv_records(text: str, delimiter: str = ",") -> list[list[str | None]]:
    """RFC 4180 records with BigQuery's NULL rule: an empty unquoted field is None, a quoted
    ``""`` the empty string (the standard csv module cannot tell them apart)."""
    records: list[list[str | None]] = []
    row: list[str | None] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] == '"':
            value, i = [], i + 1
            while True:
                j = text.index('"', i)
                value.append(text[i:j])
                if j + 1 < n and text[j + 1] == '"':
                    value.append('"')
                    i = j + 2
                    continue
                i = j + 1
                break
            field: str | None = "".join(value)
        else:
            j = i
            while j < n and text[j] not in (delimiter, "\n", "\r"):
                j += 1
            field, i = (text[i:j] or None), j
        row.append(field)
        if i < n and text[i] == delimiter:
            i += 1
            if i == n:
                row.append(None)
            continue
        if text.startswith("\r\n", i):
            i += 2
        elif i < n:
            i += 1
        records.append(row)
        row = []
    if row:
        records.append(row)
    return records


def avro_schema_of(data: bytes) -> dict[str, Any]:
    return fastavro.reader(io.BytesIO(data)).writer_schema  # type: ignore[return-value]
