"""The BigQuery front's file writer: formats, values, determinism, sharding (no servers needed).

Moved from tests/unit/test_file_formats.py with the writer (shared/gcp/file_formats.py →
devstack/bqfront/formats.py). Exports through the running front: tests/bqfront/test_front.py.
"""

from __future__ import annotations

import datetime as dt
import decimal
import gzip
import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.cloud.bigquery import SchemaField as F

from devstack.bqfront.errors import JobFailure
from devstack.bqfront.formats import FileSettings, arrow_schema, fixed_batches, write_shards
from devstack.bqfront.readback import read_rows
from devstack.bqfront.runner import check_schema
from devstack.bqfront.settings import ExportSpec, parse_uri
from devstack.bqfront.values import json_converter

# What offsite asks for (shared.gcp.export_config.COMPRESSION), the files tests/exports/readback reads.
OFFSITE = {
    "PARQUET": FileSettings("PARQUET", "SNAPPY"),
    "AVRO": FileSettings("AVRO", "DEFLATE", avro_logical_types=True),
    "CSV": FileSettings("CSV", "GZIP"),
    "NEWLINE_DELIMITED_JSON": FileSettings("NEWLINE_DELIMITED_JSON", "GZIP"),
}

FLAT = [
    F("id", "INT64", mode="REQUIRED"),
    F("amount", "NUMERIC"),
    F("ratio", "FLOAT64"),
    F("name", "STRING"),
    F("blob", "BYTES"),
    F("ok", "BOOL"),
    F("day", "DATE"),
    F("at", "DATETIME"),
    F("ts", "TIMESTAMP"),
]
NESTED = [
    F("id", "INT64", mode="REQUIRED"),
    F("tags", "STRING", mode="REPEATED"),
    F("addr", "RECORD", fields=[F("city", "STRING"), F("geo", "RECORD", fields=[F("lat", "FLOAT64")])]),
    F("items", "RECORD", mode="REPEATED", fields=[F("sku", "STRING"), F("qty", "INT64"), F("price", "NUMERIC")]),
]
UTC = dt.UTC


def flat_rows(n: int = 4) -> list[dict]:
    rows = [
        {
            "id": 2**62,
            "amount": decimal.Decimal("100.000000000"),
            "ratio": 3.0,
            "name": 'comma, "quote"\nnewline',
            "blob": b"\x00\xff",
            "ok": True,
            "day": dt.date(2025, 1, 8),
            "at": dt.datetime(2025, 1, 8, 10, 0),
            "ts": dt.datetime(2025, 1, 8, 10, 0, 0, 500000, tzinfo=UTC),
        },
        {k: None for k in ("amount", "ratio", "name", "blob", "ok", "day", "at", "ts")} | {"id": -1},
        {
            "id": 0,
            "amount": decimal.Decimal("-0.000000001"),
            "ratio": -1.5e-07,
            "name": "Zürich 東京",
            "blob": b"",
            "ok": False,
            "day": dt.date(1, 1, 1),
            "at": dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
            "ts": dt.datetime(1970, 1, 1, tzinfo=UTC),
        },
        {
            "id": 7,
            "amount": decimal.Decimal(0),
            "ratio": 1e20,
            "name": "",
            "blob": b"abc",
            "ok": None,
            "day": dt.date(2024, 2, 29),
            "at": dt.datetime(1, 1, 1, 0, 0, 0, 10),
            "ts": dt.datetime(2024, 2, 29, 23, 0, 1, 123, tzinfo=UTC),
        },
    ]
    return rows[:n]


def nested_rows() -> list[dict]:
    return [
        {
            "id": 1,
            "tags": ["a", "b"],
            "addr": {"city": "X", "geo": {"lat": 1.25}},
            "items": [{"sku": "k", "qty": 2, "price": decimal.Decimal("9.99")}],
        },
        {"id": 2, "tags": [], "addr": None, "items": []},
        {
            "id": 3,
            "tags": ["c"],
            "addr": {"city": None, "geo": None},
            "items": [
                {"sku": None, "qty": None, "price": None},
                {"sku": "z", "qty": 0, "price": decimal.Decimal("0.5")},
            ],
        },
    ]


def table(schema, rows) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=arrow_schema(schema))


def api(schema) -> list[dict]:
    return [f.to_api_repr() for f in schema]


def write(fmt: str, schema, rows, shard: int = 10_000_000, seed: str = "job") -> list[tuple[bytes, int]]:
    return list(write_shards([table(schema, rows)], schema, OFFSITE[fmt], shard, seed))


@pytest.mark.parametrize("fmt", ["PARQUET", "AVRO", "CSV", "NEWLINE_DELIMITED_JSON"])
def test_flat_rows_round_trip(fmt: str) -> None:
    ((data, count),) = write(fmt, FLAT, flat_rows())
    assert count == 4
    # CSV too: the reader (devstack/bqfront/readback.py) tells a quoted "" from an empty field
    assert read_rows(fmt, data, api(FLAT)) == flat_rows()


@pytest.mark.parametrize("fmt", ["PARQUET", "AVRO", "NEWLINE_DELIMITED_JSON"])
def test_nested_rows_round_trip(fmt: str) -> None:
    ((data, _),) = write(fmt, NESTED, nested_rows())
    assert read_rows(fmt, data, api(NESTED)) == nested_rows()


def test_csv_text_follows_bigquery_conventions() -> None:
    ((data, _),) = write("CSV", FLAT, flat_rows())
    lines = gzip.decompress(data).decode().split("\n")
    assert lines[0] == "id,amount,ratio,name,blob,ok,day,at,ts"
    assert lines[1] == '4611686018427387904,100,3.0,"comma, ""quote""'
    assert lines[2] == 'newline",AP8=,true,2025-01-08,2025-01-08T10:00:00,2025-01-08 10:00:00.5 UTC'
    assert lines[3] == "-1,,,,,,,,"
    assert (
        lines[4]
        == '0,-0.000000001,-1.5e-07,Zürich 東京,"",false,0001-01-01,9999-12-31T23:59:59.999999,1970-01-01 00:00:00 UTC'
    )  # BYTES b"" is base64 "": an empty string, quoted
    assert lines[5].startswith('7,0,1e+20,"",YWJj,,2024-02-29,0001-01-01T00:00:00.00001,')  # '' vs NULL (ok)


def test_ndjson_keeps_int64_as_strings_and_nulls() -> None:
    import json

    ((data, _),) = write("NEWLINE_DELIMITED_JSON", FLAT, flat_rows(2))
    first, second = (json.loads(line) for line in gzip.decompress(data).decode().splitlines())
    assert first["id"] == "4611686018427387904" and first["amount"] == "100" and first["ratio"] == 3.0
    assert first["ts"] == "2025-01-08 10:00:00.5 UTC" and first["blob"] == "AP8=" and first["ok"] is True
    assert second == {"id": "-1"} | {k: None for k in ("amount", "ratio", "name", "blob", "ok", "day", "at", "ts")}


def test_values_inside_records_have_the_same_text_as_top_level_ones() -> None:
    """A value's JSON text does not depend on whether it sits in a RECORD."""
    record = F("r", "RECORD", fields=list(FLAT))
    nested = [
        json_converter(record)(row) for row in table([record], [{"r": r} for r in flat_rows()]).column("r").to_pylist()
    ]
    for f in FLAT:
        direct = [json_converter(f)(v) for v in table(FLAT, flat_rows()).column(f.name).to_pylist()]
        assert direct == [n[f.name] for n in nested], f.name


def test_output_is_deterministic() -> None:
    for fmt in ("PARQUET", "AVRO", "CSV", "NEWLINE_DELIMITED_JSON"):
        assert write(fmt, FLAT, flat_rows()) == write(fmt, FLAT, flat_rows()), fmt


def test_avro_sync_marker_comes_from_the_job() -> None:
    assert write("AVRO", FLAT, flat_rows(), seed="a") != write("AVRO", FLAT, flat_rows(), seed="b")


def test_sharding_by_size_keeps_every_row_in_order() -> None:
    rows = [{"id": i, "name": f"row {i:06d} " + "x" * 50} for i in range(50_000)]
    schema = [F("id", "INT64"), F("name", "STRING")]
    shards = list(
        write_shards(
            [table(schema, rows[:12345]), table(schema, rows[12345:])], schema, OFFSITE["PARQUET"], 200_000, "s"
        )
    )
    assert len(shards) >= 3
    assert sum(n for _, n in shards) == 50_000
    assert all(len(data) >= 200_000 for data, _ in shards[:-1])
    ids = [i for data, _ in shards for i in pq.read_table(io.BytesIO(data)).column("id").to_pylist()]
    assert ids == list(range(50_000))


def test_empty_source_still_writes_one_file() -> None:
    for fmt in ("PARQUET", "AVRO", "CSV", "NEWLINE_DELIMITED_JSON"):
        ((data, count),) = list(write_shards([], FLAT, OFFSITE[fmt], 1024, "e"))
        assert count == 0 and read_rows(fmt, data, api(FLAT)) == []
    ((csv_data, _),) = list(write_shards([], FLAT, OFFSITE["CSV"], 1024, "e"))
    assert gzip.decompress(csv_data).decode() == "id,amount,ratio,name,blob,ok,day,at,ts\n"


def test_fixed_batches_recut_any_input_batching() -> None:
    schema = [F("id", "INT64")]
    parts = [table(schema, [{"id": i} for i in range(a, b)]) for a, b in ((0, 3), (3, 10), (10, 10), (10, 25))]
    sizes = [t.num_rows for t in fixed_batches(parts, arrow_schema(schema), rows=8)]
    assert sizes == [8, 8, 8, 1]


def test_csv_refuses_nested_columns_like_bigquery() -> None:
    def spec(fmt: str) -> ExportSpec:
        return ExportSpec(parse_uri("gs://bkt/x-*.out"), OFFSITE[fmt])

    with pytest.raises(JobFailure, match="Operation cannot be performed on a nested schema. Field: tags") as info:
        check_schema(spec("CSV"), NESTED)
    assert info.value.reason == "invalid"
    check_schema(spec("NEWLINE_DELIMITED_JSON"), NESTED)
    check_schema(spec("CSV"), FLAT)


BIG = [F("id", "INT64", mode="REQUIRED"), F("bn", "BIGNUMERIC"), F("f", "FLOAT64"), F("s", "STRING")]
# BigQuery's Parquet type for BIGNUMERIC is DECIMAL(76, 38), and the writer holds values as Arrow
# decimal256(76, 38): the largest magnitudes with 76 digits. BIGNUMERIC's own range ends at
# ±5.7896…e38 (77 digits), beyond what that type holds (docs/bqfront.md, "What it does not do").
BIGNUMERIC_MAX = decimal.Decimal("9" * 38 + "." + "9" * 38)
BIGNUMERIC_MIN = decimal.Decimal("-" + "9" * 38 + "." + "9" * 38)  # not -MAX: the context rounds to 28 digits


def big_rows() -> list[dict]:
    return [
        {"id": 1, "bn": BIGNUMERIC_MAX, "f": float("inf"), "s": "\r"},
        {"id": 2, "bn": BIGNUMERIC_MIN, "f": float("-inf"), "s": ""},
        {"id": 3, "bn": decimal.Decimal("1E-38"), "f": float("nan"), "s": None},
        {"id": 4, "bn": None, "f": None, "s": "a\r\nb"},
    ]


@pytest.mark.parametrize("fmt", ["PARQUET", "AVRO", "CSV", "NEWLINE_DELIMITED_JSON"])
def test_bignumeric_limits_and_non_finite_floats(fmt: str) -> None:
    """bqemulator cannot store BIGNUMERIC (500 on such a column): its text and types are checked here."""
    from tests.bqfront import readers

    ((data, count),) = write(fmt, BIG, big_rows())
    assert count == 4
    readers.assert_same_rows(readers.read(fmt, data, BIG), big_rows())
    if fmt == "NEWLINE_DELIMITED_JSON":
        first = gzip.decompress(data).decode().split("\n")[0]
        assert first == ('{"id":"1","bn":"' + "9" * 38 + "." + "9" * 38 + '","f":"Infinity","s":"\\r"}')
    if fmt == "CSV":
        text = gzip.decompress(data).decode()
        assert "\n3,0.00000000000000000000000000000000000001,NaN,\n" in text
        assert "\n1," + "9" * 38 + "." + "9" * 38 + ',Infinity,"\r"\n' in text
