"""export_table through the real handler, then every file read back and compared with the source."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib

import pyarrow.parquet as pq
import pytest

from devstack.bqfront.formats import arrow_schema
from devstack.bqfront.readback import avro_schema_of, read_rows
from tests.bqfront.readers import same
from tests.exports.conftest import ExportsKit, manifest_of, object_bytes, query_task, table_task

FORMATS = ["PARQUET", "AVRO", "CSV", "NEWLINE_DELIMITED_JSON"]


def _crc32c(data: bytes) -> str:
    from google_crc32c import value

    return base64.b64encode(value(data).to_bytes(4, "big")).decode()


def _exported_rows(kit: ExportsKit, manifest, fmt: str) -> list[dict]:
    rows: list[dict] = []
    for f in manifest.files:
        data = object_bytes(kit, f.object)
        assert f.size == len(data)
        assert f.md5 == base64.b64encode(hashlib.md5(data).digest()).decode()
        assert f.crc32c == _crc32c(data)
        # BigQuery reports no SHA-1 of what it writes; Box delivery computes and records it later.
        assert f.sha1 is None
        rows.extend(read_rows(fmt, data, manifest.schema))
    return rows


def _assert_rows_equal(actual: list[dict], expected: list[dict]) -> None:
    assert len(actual) == len(expected)
    first = next(iter(expected[0])) if expected else None
    actual = sorted(actual, key=lambda r: r[first])
    for got, want in zip(actual, expected, strict=True):
        assert same(got, want), f"row differs:\n got  {got}\n want {want}"


# CSV cannot hold RECORD/REPEATED columns (customers, products): the flat query export covers
# CSV here, and test_failures shows CSV of a nested table failing like BigQuery's extract.
NESTED_FORMATS = [f for f in FORMATS if f != "CSV"]


@pytest.mark.parametrize("fmt", NESTED_FORMATS)
@pytest.mark.parametrize("table", ["customers", "products"])
def test_every_format_round_trips(exports_env: ExportsKit, table: str, fmt: str) -> None:
    kit = exports_env
    task = table_task(kit, table, fmt)
    kit.main.export_table(kit.table_export_event(task))
    manifest = manifest_of(kit, task)
    assert manifest is not None
    expected = kit.source_rows(table)
    assert manifest.row_count == len(expected)
    assert manifest.format == fmt and manifest.destinations == ("box",)
    assert [f.name for f in manifest.files] == [
        f"{table}_20250108-000000000000.{manifest.files[0].name.split('.', 1)[1]}"
    ]
    _assert_rows_equal(_exported_rows(kit, manifest, fmt), expected)


@pytest.mark.parametrize("fmt", FORMATS)
def test_flat_table_in_every_format_with_query_export(exports_env: ExportsKit, fmt: str) -> None:
    """orders_daily (SELECT * FROM orders WHERE order_date = {date}) round-trips in all formats."""
    kit = exports_env
    day = dt.date(2025, 1, 8)
    task = query_task(kit, day, fmt)
    kit.main.export_table(kit.table_export_event(task))
    manifest = manifest_of(kit, task)
    assert manifest is not None
    expected = kit.source_rows("orders", where_date=day)
    assert 1000 < manifest.row_count == len(expected)
    assert manifest.files[0].name.startswith("Orders_20250108-000000000000.")
    _assert_rows_equal(_exported_rows(kit, manifest, fmt), expected)


def test_file_level_types_match_bigquery_types(exports_env: ExportsKit) -> None:
    kit = exports_env
    parquet = table_task(kit, "customers", "PARQUET")
    avro = table_task(kit, "customers", "AVRO")
    for task in (parquet, avro):
        kit.main.export_table(kit.table_export_event(task))
    pq_manifest, avro_manifest = manifest_of(kit, parquet), manifest_of(kit, avro)
    import io

    from google.cloud.bigquery import SchemaField

    fields = [SchemaField.from_api_repr(f) for f in pq_manifest.schema]
    pq_schema = pq.read_schema(io.BytesIO(object_bytes(kit, pq_manifest.files[0].object)))
    assert pq_schema.remove_metadata() == arrow_schema(fields)
    meta = pq.read_metadata(io.BytesIO(object_bytes(kit, pq_manifest.files[0].object)))
    assert meta.row_group(0).column(0).compression == "SNAPPY"
    writer_schema = avro_schema_of(object_bytes(kit, avro_manifest.files[0].object))
    by_name = {f["name"]: f["type"] for f in writer_schema["fields"]}
    assert by_name["customer_id"] == "long"
    assert by_name["balance"][1]["logicalType"] == "decimal"
    assert by_name["last_login"][1]["logicalType"] == "timestamp-micros"
    assert by_name["tags"]["type"] == "array"
    assert by_name["address"][1]["type"] == "record"


def test_large_table_shards_by_the_configured_size(exports_env: ExportsKit) -> None:
    kit = exports_env
    task = table_task(kit, "orders", "PARQUET")
    kit.main.export_table(kit.table_export_event(task))
    manifest = manifest_of(kit, task)
    shard = kit.config.shard_size_bytes
    names = [f.name for f in manifest.files]
    assert len(names) >= 3
    assert names == [f"orders_20250108-{i:012d}.parquet" for i in range(len(names))]
    # A shard closes once it reaches the size: all but the last are >= it, none far beyond it.
    assert all(f.size >= shard for f in manifest.files[:-1])
    assert all(f.size < 2 * shard for f in manifest.files)
    rows = _exported_rows(kit, manifest, "PARQUET")
    assert manifest.row_count == 200_000 == len(rows)
    assert sorted(r["order_id"] for r in rows) == list(range(1, 200_001))


def test_manifest_describes_the_run(exports_env: ExportsKit) -> None:
    kit = exports_env
    task = table_task(kit, "products", "NEWLINE_DELIMITED_JSON", destinations=("box", "sftp:local"))
    kit.main.export_table(kit.table_export_event(task))
    manifest = manifest_of(kit, task)
    assert manifest.run_id == task.run_id and manifest.source == task.source
    assert manifest.date == "2025-01-08" and manifest.bucket == kit.bucket and manifest.prefix == task.prefix
    assert manifest.compression == "GZIP" and manifest.file_name == "products_{YYYYMMDD}-*.json.gz"
    assert manifest.destinations == ("box", "sftp:local")
    assert manifest.job_id.startswith(f"offsite_{task.run_id}_sales_products_")
    assert [f["name"] for f in manifest.schema][:3] == ["sku", "title", "price"]
    assert manifest.extra["file_pattern"] == "products_20250108-*.json.gz"
    # _run.json is the TableExport, as upload functions read it for routing.
    from shared.messages import TableExport

    assert TableExport.from_json(object_bytes(kit, task.prefix + "_run.json")) == task
