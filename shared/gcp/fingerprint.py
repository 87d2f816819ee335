"""A per-column aggregate fingerprint of a table or query result: proof that a restore is equal,
not only the same size.

One query computes, for every top-level column ``c`` (records and arrays as a whole):

- ``nulls``: ``COUNTIF(c IS NULL)``;
- ``xor``: ``BIT_XOR(FARM_FINGERPRINT(TO_JSON_STRING(c)))``;
- ``sum``: ``SUM(MOD(FARM_FINGERPRINT(TO_JSON_STRING(c)), 2147483647))`` — the XOR alone cannot
  see a value that appears twice more or less; the sum can. Each row adds less than 2^31, so
  the sum cannot overflow below 2^32 rows.

plus ``COUNT(*)``. Every function is standard BigQuery and runs the same on bqemulator (checked:
FARM_FINGERPRINT, BIT_XOR, TO_JSON_STRING of every type the local stack carries, NUMERIC, BYTES
with NUL bytes, DATE 0001-01-01/9999-12-31, nested and repeated fields). TO_JSON_STRING's text
differs between engines (bqemulator: ``TO_JSON_STRING(NULL)`` is NULL, BYTES as escapes, not
base64) — fingerprints are compared only within one engine: the export's and the restore's
BigQuery, never across.
"""

from __future__ import annotations

from typing import Any

from shared.errors import PermanentError

METHOD = "v1:countif-null,bit_xor-farm_fingerprint-to_json_string,sum-mod-2147483647"
MODULUS = 2147483647


def columns_of(schema: list[dict[str, Any]]) -> list[str]:
    """The top-level column names of an API-shaped schema."""
    return [str(field["name"]) for field in schema]


def quoted_column(column: str) -> str:
    if "`" in column or "\\" in column:
        raise PermanentError(f"column name {column!r} contains a backtick or backslash")
    return f"`{column}`"


def fingerprint_sql(from_clause: str, columns: list[str]) -> str:
    """``SELECT COUNT(*), nulls/xor/sum per column FROM <from_clause>`` (aliases by position)."""
    parts = ["COUNT(*) AS row_count"]
    for i, column in enumerate(columns):
        quoted = quoted_column(column)
        hashed = f"FARM_FINGERPRINT(TO_JSON_STRING({quoted}))"
        parts += [
            f"COUNTIF({quoted} IS NULL) AS n{i}",
            f"BIT_XOR({hashed}) AS x{i}",
            f"SUM(MOD({hashed}, {MODULUS})) AS s{i}",
        ]
    return f"SELECT {', '.join(parts)} FROM {from_clause}"


def from_row(row: Any, columns: list[str], *, as_of: str | None) -> dict[str, Any]:
    """The fingerprint (as stored in the manifest) from the query's one result row."""

    def number(value: Any) -> int | None:
        return None if value is None else int(value)

    return {
        "method": METHOD,
        "as_of": as_of,
        "row_count": int(row["row_count"]),
        "columns": {
            column: {"nulls": int(row[f"n{i}"]), "xor": number(row[f"x{i}"]), "sum": number(row[f"s{i}"])}
            for i, column in enumerate(columns)
        },
    }


def differences(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """What differs between two fingerprints, one line per column (empty: equal)."""
    if expected.get("method") != actual.get("method"):
        return [f"fingerprint method {actual.get('method')!r}, expected {expected.get('method')!r}"]
    lines = []
    if expected["row_count"] != actual["row_count"]:
        lines.append(f"row count {actual['row_count']}, expected {expected['row_count']}")
    want, got = expected["columns"], actual["columns"]
    for column in sorted(set(want) | set(got)):
        if column not in got:
            lines.append(f"column {column}: missing")
        elif column not in want:
            lines.append(f"column {column}: not in the export")
        elif want[column] != got[column]:
            lines.append(f"column {column}: {got[column]}, expected {want[column]}")
    return lines
