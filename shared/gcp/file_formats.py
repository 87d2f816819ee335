"""Writing BigQuery rows the way an extract job would: Parquet, Avro, CSV+GZIP, NDJSON+GZIP, sharded.

Used by the local warehouse (bqemulator cannot extract to GCS). Output is deterministic: the
same rows in the same order give byte-identical files (fixed batch size, gzip mtime 0, an Avro
sync marker derived from the job id), so a redelivered export can tell "already written" from
"changed". Values follow BigQuery's export conventions as documented in docs/exports.md;
where the local writer differs from real BigQuery, that document says so.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq

from shared.errors import PermanentError
from shared.gcp.bigquery import COMPRESSION
from shared.gcp.bq_values import avro_converter, avro_schema, field_type, is_repeated, text_column

ROWS_PER_BATCH = 8192  # rows written between size checks (fixed: keeps shard boundaries deterministic)


# ---- Arrow schema (BigQuery's own Arrow mapping) ----------------------------------------------


def arrow_type(field: Any) -> pa.DataType:
    kind = field_type(field)
    base: pa.DataType
    if kind == "RECORD":
        base = pa.struct([arrow_field(f) for f in field.fields])
    else:
        base = {
            "INTEGER": pa.int64(),
            "FLOAT": pa.float64(),
            "NUMERIC": pa.decimal128(38, 9),
            "BIGNUMERIC": pa.decimal256(76, 38),
            "STRING": pa.string(),
            "BYTES": pa.binary(),
            "BOOLEAN": pa.bool_(),
            "DATE": pa.date32(),
            "DATETIME": pa.timestamp("us"),
            "TIMESTAMP": pa.timestamp("us", tz="UTC"),
            "TIME": pa.time64("us"),
            "JSON": pa.string(),
            "GEOGRAPHY": pa.string(),
        }.get(kind, pa.string())
    return pa.list_(base) if is_repeated(field) else base


def arrow_field(field: Any) -> pa.Field:
    nullable = str(field.mode or "NULLABLE").upper() == "NULLABLE"
    return pa.field(field.name, arrow_type(field), nullable=nullable)


def arrow_schema(schema: list[Any]) -> pa.Schema:
    return pa.schema([arrow_field(f) for f in schema])


def conform(batch: pa.RecordBatch | pa.Table, schema: pa.Schema) -> pa.Table:
    """Cast what the emulator returned (REST or Storage Read API shapes) to the canonical schema."""
    table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
    table = table.select(schema.names).replace_schema_metadata(None)
    return table.cast(schema)


def check_exportable(fmt: str, schema: list[Any], source: str) -> None:
    """BigQuery refuses CSV for nested or repeated columns; so does the local writer."""
    if fmt != "CSV":
        return
    for f in schema:
        if field_type(f) == "RECORD" or is_repeated(f):
            raise PermanentError(
                f"extract of {source} failed: invalid: Operation cannot be performed on a nested schema. "
                f"Field: {f.name} (CSV cannot hold nested or repeated columns; use PARQUET, AVRO or NEWLINE_DELIMITED_JSON)"
            )


# ---- shard writers ---------------------------------------------------------------------------


class ShardWriter(Protocol):
    def write(self, table: pa.Table) -> None: ...
    def size(self) -> int: ...
    def finish(self) -> bytes: ...


class _ParquetShard:
    def __init__(self, schema: pa.Schema) -> None:
        self._sink = pa.BufferOutputStream()
        self._writer = pq.ParquetWriter(self._sink, schema, compression="snappy")

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table)

    def size(self) -> int:
        return int(self._sink.tell())

    def finish(self) -> bytes:
        self._writer.close()
        return self._sink.getvalue().to_pybytes()


class _GzipTextShard:
    """CSV (with header) or NDJSON, gzip with mtime 0 and no file name: identical bytes every time."""

    def __init__(self, schema: list[Any], fmt: str) -> None:
        self._buffer = io.BytesIO()
        self._gzip = gzip.GzipFile(filename="", mode="wb", fileobj=self._buffer, mtime=0, compresslevel=6)
        self._text = io.TextIOWrapper(self._gzip, encoding="utf-8", newline="")
        self._schema = schema
        self._names = [f.name for f in schema]
        self._json = fmt == "NEWLINE_DELIMITED_JSON"
        if not self._json:
            self._csv = csv.writer(self._text, lineterminator="\n")
            self._csv.writerow(self._names)

    def write(self, table: pa.Table) -> None:
        columns = [text_column(f, table.column(f.name), json_style=self._json) for f in self._schema]
        if self._json:
            names = self._names
            self._text.writelines(
                json.dumps(dict(zip(names, values, strict=True)), ensure_ascii=False, separators=(",", ":")) + "\n"
                for values in zip(*columns, strict=True)
            )
        else:
            self._csv.writerows(zip(*columns, strict=True))
        self._text.flush()

    def size(self) -> int:
        return self._buffer.tell()

    def finish(self) -> bytes:
        self._text.flush()
        self._text.detach()
        self._gzip.close()
        return self._buffer.getvalue()


class _AvroShard:
    def __init__(self, schema: list[Any], seed: str) -> None:
        self._buffer = io.BytesIO()
        self._convs = [(f.name, avro_converter(f)) for f in schema]
        marker = hashlib.md5(seed.encode(), usedforsecurity=False).digest()
        parsed = fastavro.parse_schema(avro_schema(schema))
        self._writer = fastavro.write.Writer(self._buffer, parsed, codec="deflate", sync_marker=marker)

    def write(self, table: pa.Table) -> None:
        for row in table.to_pylist():
            self._writer.write({name: conv(row[name]) for name, conv in self._convs})
        self._writer.flush()

    def size(self) -> int:
        return self._buffer.tell()

    def finish(self) -> bytes:
        self._writer.flush()
        return self._buffer.getvalue()


def shard_writer(fmt: str, schema: list[Any], seed: str) -> ShardWriter:
    if fmt == "PARQUET":
        return _ParquetShard(arrow_schema(schema))
    if fmt == "AVRO":
        return _AvroShard(schema, seed)
    if fmt in ("CSV", "NEWLINE_DELIMITED_JSON"):
        return _GzipTextShard(schema, fmt)
    raise PermanentError(f"format: {fmt!r} is not supported; expected one of {', '.join(COMPRESSION)}")


def fixed_batches(
    batches: Iterable[pa.RecordBatch | pa.Table], schema: pa.Schema, rows: int = ROWS_PER_BATCH
) -> Iterator[pa.Table]:
    """Re-cut whatever batches the API returned into tables of exactly ``rows`` rows (the last may be short)."""
    pending: list[pa.Table] = []
    count = 0
    for batch in batches:
        table = conform(batch, schema)
        while table.num_rows:
            take = min(rows - count, table.num_rows)
            pending.append(table.slice(0, take))
            count += take
            table = table.slice(take)
            if count == rows:
                yield pa.concat_tables(pending).combine_chunks()
                pending, count = [], 0
    if count:
        yield pa.concat_tables(pending).combine_chunks()


def write_shards(
    batches: Iterable[pa.RecordBatch | pa.Table], fmt: str, schema: list[Any], shard_size_bytes: int, seed: str
) -> Iterator[tuple[bytes, int]]:
    """Yield (file bytes, rows) per shard: a new shard starts once one reaches ``shard_size_bytes``.

    At least one shard is produced, even for zero rows (BigQuery writes one file then too).
    """
    target = arrow_schema(schema)
    writer: ShardWriter | None = None
    rows_in_shard = 0
    produced = 0
    for table in fixed_batches(batches, target):
        if writer is None:
            writer, rows_in_shard = shard_writer(fmt, schema, f"{seed}/{produced}"), 0
        writer.write(table)
        rows_in_shard += table.num_rows
        if writer.size() >= shard_size_bytes:
            yield writer.finish(), rows_in_shard
            produced += 1
            writer = None
    if writer is not None:
        yield writer.finish(), rows_in_shard
    elif produced == 0:
        yield shard_writer(fmt, schema, f"{seed}/0").finish(), 0
