"""Export files as BigQuery writes them: Parquet, Avro, CSV, NDJSON, each with its compressions.

Moved here from ``shared/gcp/file_formats.py`` and fixed:

- CSV is written by hand with BigQuery's quoting: a value is quoted when it holds the
  delimiter, ``"``, CR or LF — a lone ``\\r`` included (Python's csv module with
  ``lineterminator="\\n"`` leaves a lone CR bare, and every reader then splits the row);
  an empty string is ``""`` and NULL an empty field;
- a REPEATED field inside a RECORD that is NULL is written as NULL (no crash), in every
  format that allows nesting.

Output is deterministic: the same rows in the same order give the same bytes (fixed batch
size, gzip mtime 0, an Avro sync marker derived from the job id).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

import fastavro
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from devstack.bqfront.values import avro_converter, avro_schema, field_type, is_repeated, json_converter, scalar_text

ROWS_PER_BATCH = 1024  # rows written between size checks (fixed: keeps shard boundaries deterministic)
# Parquet rows buffered into one row group. A row group per 1,024-row batch made files 25 % larger
# than pyarrow's and cost most of the writing time; 65,536 rows of the sample shape are ~7 MB.
PARQUET_ROW_GROUP_ROWS = 65_536
# A column's dictionary gives up (plain encoding for the rest of the row group) once it holds
# 64 KiB: low-cardinality columns stay dictionary-encoded, near-unique ones (ids, codes, notes)
# stop early. At pyarrow's 1 MiB default each 65,536-row group hashed almost every value of such
# columns first: 2 M sample rows took 2.2 s to encode (126 MB) against 1.2-1.4 s (114 MB).
PARQUET_DICTIONARY_LIMIT = 64 * 1024
FORMATS = ("CSV", "NEWLINE_DELIMITED_JSON", "AVRO", "PARQUET")
COMPRESSIONS = {
    "CSV": ("NONE", "GZIP"),
    "NEWLINE_DELIMITED_JSON": ("NONE", "GZIP"),
    "AVRO": ("NONE", "DEFLATE", "SNAPPY"),
    "PARQUET": ("NONE", "SNAPPY", "GZIP", "ZSTD"),
}
DEFAULT_COMPRESSION = {"CSV": "NONE", "NEWLINE_DELIMITED_JSON": "NONE", "AVRO": "NONE", "PARQUET": "SNAPPY"}


@dataclass(frozen=True)
class FileSettings:
    """How to write the files of one export (already validated by :mod:`devstack.bqfront.settings`)."""

    format: str
    compression: str
    header: bool = True
    delimiter: str = ","
    avro_logical_types: bool = True


# ---- Arrow schema (BigQuery's Arrow / Parquet mapping) ------------------------------------------

_ARROW = {
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
}


def arrow_type(field: Any) -> pa.DataType:
    """Arrow type of a BigQuery field (REPEATED → list, RECORD → struct)."""
    kind = field_type(field)
    base = pa.struct([arrow_field(f) for f in field.fields]) if kind == "RECORD" else _ARROW.get(kind, pa.string())
    return pa.list_(base) if is_repeated(field) else base


def arrow_field(field: Any) -> pa.Field:
    """REQUIRED → not nullable. REPEATED stays nullable: inside a NULL record the array is NULL too."""
    nullable = str(field.mode or "NULLABLE").upper() != "REQUIRED"
    return pa.field(field.name, arrow_type(field), nullable=nullable)


def arrow_schema(schema: list[Any]) -> pa.Schema:
    """The Arrow schema of a BigQuery schema (list of SchemaField)."""
    return pa.schema([arrow_field(f) for f in schema])


def conform(batch: pa.RecordBatch | pa.Table, schema: pa.Schema) -> pa.Table:
    """Cast what the emulator returned (REST or Storage Read API shapes) to the canonical schema.

    Raises pyarrow.ArrowInvalid when a column cannot be cast (a type the mapping does not know).
    """
    table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
    table = table.select(schema.names).replace_schema_metadata(None)
    columns = [_relax(table.column(i), schema.field(i).type) for i in range(len(schema))]
    return pa.Table.from_arrays(columns, schema=schema)


def _relax(column: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray:
    """Cast one column. Struct children the source declared non-nullable are cast field by field;
    a NULL array becomes an empty one (BigQuery has no NULL arrays; inside a NULL record the
    record's own validity hides it)."""
    if pa.types.is_struct(target) and column.type != target:
        chunks = []
        for chunk in column.chunks:
            children = [
                _relax(pa.chunked_array([chunk.field(f.name)], type=chunk.type.field(f.name).type), f.type)
                for f in target
            ]
            arrays = [c.combine_chunks() for c in children]
            mask = chunk.is_null() if chunk.null_count else None
            chunks.append(pa.StructArray.from_arrays(arrays, fields=list(target), mask=mask))
        column = pa.chunked_array(chunks, type=target)
    elif column.type != target:
        column = column.cast(target)
    if pa.types.is_list(target) and column.null_count:
        column = pc.fill_null(column, pa.scalar([], type=target))
    return column


def nested_field(schema: list[Any]) -> str | None:
    """Name of the first RECORD or REPEATED column (CSV cannot hold one), or None."""
    for f in schema:
        if field_type(f) == "RECORD" or is_repeated(f):
            return str(f.name)
    return None


# ---- shard writers ------------------------------------------------------------------------------


class Sink:
    """Where one shard's bytes go (a GCS resumable upload, or memory), counting them on the way."""

    def __init__(self, target: BinaryIO) -> None:
        self.target = target
        self.written = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        n = self.target.write(data)
        self.written += len(data)
        return n if n is not None else len(data)

    def flush(self) -> None:
        pass  # the target uploads whole chunks on its own; a flush here would cut short ones

    @property
    def closed(self) -> bool:
        return False  # pyarrow checks; the shard writer never closes the target, stream_shards does

    def tell(self) -> int:
        return self.written

    def seekable(self) -> bool:
        return False  # a stream: fastavro then writes a fresh header instead of appending

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False


class ShardWriter(Protocol):
    def write(self, table: pa.Table) -> None: ...
    def finish(self) -> None: ...


class _ParquetShard:
    """Rows buffered up to ``PARQUET_ROW_GROUP_ROWS``, then written as one row group; written
    earlier when the buffered rows (uncompressed) could take the file to ``shard_bytes``, so the
    shard's size check sees the file grow."""

    def __init__(self, schema: pa.Schema, compression: str, sink: Sink, shard_bytes: int) -> None:
        codec = "none" if compression == "NONE" else compression.lower()
        self._writer = pq.ParquetWriter(
            pa.PythonFile(sink, mode="w"), schema, compression=codec, dictionary_pagesize_limit=PARQUET_DICTIONARY_LIMIT
        )
        self._sink, self._shard_bytes = sink, shard_bytes
        self._pending: list[pa.Table] = []
        self._rows = self._bytes = 0

    def write(self, table: pa.Table) -> None:
        self._pending.append(table)
        self._rows += table.num_rows
        self._bytes += table.nbytes
        if self._rows >= PARQUET_ROW_GROUP_ROWS or self._sink.written + self._bytes >= self._shard_bytes:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._writer.write_table(pa.concat_tables(self._pending), row_group_size=PARQUET_ROW_GROUP_ROWS)
        self._pending, self._rows, self._bytes = [], 0, 0

    def finish(self) -> None:
        self._flush()
        self._writer.close()


def csv_cell(value: str | None, delimiter: str) -> str:
    """One CSV field: NULL → empty; '' → ``""``; quoted when holding the delimiter, '"', CR or LF."""
    if value is None:
        return ""
    if value == "" or delimiter in value or any(c in value for c in '"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


class _TextShard:
    """CSV or NDJSON, optionally gzip (mtime 0, no file name): identical bytes every time."""

    def __init__(self, schema: list[Any], settings: FileSettings, sink: Sink) -> None:
        self._sink = sink
        self._gzip = (
            gzip.GzipFile(filename="", mode="wb", fileobj=sink, mtime=0, compresslevel=6)  # type: ignore[arg-type]
            if settings.compression == "GZIP"
            else None
        )
        self._schema = schema
        self._json = settings.format == "NEWLINE_DELIMITED_JSON"
        self._delimiter = settings.delimiter
        self._json_convs = [(f.name, json_converter(f)) for f in schema]
        self._kinds = [(f.name, field_type(f)) for f in schema]
        if not self._json and settings.header:
            self._emit(self._delimiter.join(csv_cell(f.name, self._delimiter) for f in schema) + "\n")

    def _emit(self, text: str) -> None:
        (self._gzip or self._sink).write(text.encode("utf-8"))

    def write(self, table: pa.Table) -> None:
        lines = []
        for row in table.to_pylist():
            if self._json:
                obj = {name: conv(row[name]) for name, conv in self._json_convs}
                lines.append(_html_safe(json.dumps(obj, ensure_ascii=False, separators=(",", ":"))))
            else:
                cells = (
                    csv_cell(None if row[name] is None else scalar_text(kind, row[name]), self._delimiter)
                    for name, kind in self._kinds
                )
                lines.append(self._delimiter.join(cells))
        if lines:
            self._emit("\n".join(lines) + "\n")

    def finish(self) -> None:
        if self._gzip is not None:
            self._gzip.close()


class _AvroShard:
    def __init__(self, schema: list[Any], settings: FileSettings, seed: str, sink: Sink) -> None:
        logical = settings.avro_logical_types
        self._convs = [(f.name, avro_converter(f, logical)) for f in schema]
        marker = hashlib.md5(seed.encode(), usedforsecurity=False).digest()
        parsed = fastavro.parse_schema(avro_schema(schema, logical))
        codec = {"NONE": "null", "DEFLATE": "deflate", "SNAPPY": "snappy"}[settings.compression]
        self._writer = fastavro.write.Writer(sink, parsed, codec=codec, sync_marker=marker)

    def write(self, table: pa.Table) -> None:
        for row in table.to_pylist():
            self._writer.write({name: conv(row[name]) for name, conv in self._convs})
        self._writer.flush()

    def finish(self) -> None:
        self._writer.flush()


def shard_writer(
    schema: list[Any], settings: FileSettings, seed: str, sink: Sink, shard_bytes: int = 2**62
) -> ShardWriter:
    """A writer for one file into ``sink`` (of about ``shard_bytes``). KeyError for a
    format/compression settings should have refused."""
    if settings.format == "PARQUET":
        return _ParquetShard(arrow_schema(schema), settings.compression, sink, shard_bytes)
    if settings.format == "AVRO":
        return _AvroShard(schema, settings, seed, sink)
    if settings.format in ("CSV", "NEWLINE_DELIMITED_JSON"):
        return _TextShard(schema, settings, sink)
    raise KeyError(settings.format)


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
                yield _joined(pending)
                pending, count = [], 0
    if count:
        yield _joined(pending)


def _joined(pieces: list[pa.Table]) -> pa.Table:
    """One table of ``pieces``; a single piece is yielded as it is (a slice: no copy)."""
    return pieces[0] if len(pieces) == 1 else pa.concat_tables(pieces).combine_chunks()


def _html_safe(line: str) -> str:
    """BigQuery writes ``<``, ``>`` and ``&`` in JSON exports as ``\\u003c``, ``\\u003e``, ``\\u0026``
    ("profit&loss becomes profit\\u0026loss", docs: exporting-data, export limitations). In a JSON
    line they can only stand inside strings, so replacing them everywhere is exact."""
    return line.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def stream_shards(
    batches: Iterable[pa.RecordBatch | pa.Table],
    schema: list[Any],
    settings: FileSettings,
    shard_size_bytes: int,
    seed: str,
    open_target: Callable[[int], BinaryIO],
) -> Iterator[tuple[int, int]]:
    """Write shard after shard into ``open_target(index)`` as the rows arrive; yield (rows, bytes)
    per finished shard, after its target was closed. A new shard starts once one reaches
    ``shard_size_bytes``. At least one shard is produced, even for zero rows (BigQuery writes one
    file then too). Memory: one batch plus whatever the target buffers (a resumable upload: a chunk).
    """
    target = arrow_schema(schema)
    writer: ShardWriter | None = None
    sink: Sink | None = None
    rows_in_shard = 0
    produced = 0

    def close() -> tuple[int, int]:
        assert writer is not None and sink is not None
        writer.finish()
        sink.target.close()
        return rows_in_shard, sink.written

    for table in fixed_batches(batches, target):
        if writer is None:
            sink = Sink(open_target(produced))
            writer = shard_writer(schema, settings, f"{seed}/{produced}", sink, shard_size_bytes)
            rows_in_shard = 0
        writer.write(table)
        rows_in_shard += table.num_rows
        assert sink is not None
        if sink.written >= shard_size_bytes:
            yield close()
            produced += 1
            writer = None
    if writer is not None:
        yield close()
    elif produced == 0:
        sink = Sink(open_target(0))
        writer, rows_in_shard = shard_writer(schema, settings, f"{seed}/0", sink), 0
        yield close()


class _Kept(io.BytesIO):
    """An in-memory target whose bytes outlive ``close()``."""

    def close(self) -> None:
        self.kept = self.getvalue()
        super().close()


def write_shards(
    batches: Iterable[pa.RecordBatch | pa.Table],
    schema: list[Any],
    settings: FileSettings,
    shard_size_bytes: int,
    seed: str,
) -> Iterator[tuple[bytes, int]]:
    """:func:`stream_shards` into memory: (file bytes, rows) per shard."""
    targets: list[_Kept] = []

    def open_target(index: int) -> BinaryIO:
        targets.append(_Kept())
        return targets[-1]

    for rows, _ in stream_shards(batches, schema, settings, shard_size_bytes, seed, open_target):
        yield targets[-1].kept, rows
