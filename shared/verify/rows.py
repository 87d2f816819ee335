"""``verify.rows``: count the records of delivered files as a consumer would read them, so a file
whose bytes arrived intact but whose rows do not parse back is a mismatch, not in_sync.

Parquet: the footer's row count (pyarrow; the file is spooled to a temporary file, as Parquet
needs random access). Avro: the record count of each block (fastavro, streamed). CSV and
NDJSON (gzip-compressed as offsite exports them): a streaming parse — the csv module with
BigQuery's quoting (a quoted field may hold newlines) minus the header row; one JSON document
per non-empty line. Memory stays bounded for files of any size.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
import tempfile
from typing import Any

from shared.destinations.base import ByteStream, Destination, Readable
from shared.layout import RemoteFolder
from shared.manifest import Manifest

SPOOL_BYTES = 64 * 1024 * 1024


class _Raw(io.RawIOBase):
    def __init__(self, stream: ByteStream) -> None:
        self.stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def count_records(fmt: str, stream: ByteStream) -> int:
    """Records in one exported file of ``fmt``; ValueError (naming what failed) when it does not parse."""
    raw = io.BufferedReader(_Raw(stream), buffer_size=1024 * 1024)
    try:
        if fmt == "PARQUET":
            return _parquet_rows(raw)
        if fmt == "AVRO":
            import fastavro

            return sum(block.num_records for block in fastavro.block_reader(raw))
        text = io.TextIOWrapper(gzip.GzipFile(fileobj=raw), encoding="utf-8", newline="")
        if fmt == "NEWLINE_DELIMITED_JSON":
            count = 0
            for line in text:
                if line.strip():
                    json.loads(line)
                    count += 1
            return count
        if fmt == "CSV":
            records = sum(1 for _ in csv.reader(text, strict=True))
            return max(records - 1, 0)  # the header row
        raise ValueError(f"unknown format {fmt!r}")
    except (OSError, EOFError, csv.Error, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"does not parse as {fmt}: {exc}") from None
    finally:
        stream.close()


def _parquet_rows(raw: io.BufferedIOBase) -> int:
    import pyarrow.parquet as pq

    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        shutil.copyfileobj(raw, spool, 1024 * 1024)
        spool.seek(0)
        try:
            return int(pq.ParquetFile(spool).metadata.num_rows)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
            raise ValueError(f"does not parse as PARQUET: {exc}") from None


def rows_note(manifest: Manifest, destination: Destination, folder: RemoteFolder) -> str | None:
    """None when the delivered files hold ``manifest.row_count`` records; else what differs."""
    if not isinstance(destination, Readable):
        return f"rows: {destination.name} cannot be read back to count records"
    total, failures = 0, []
    for file in manifest.files:
        path = f"{folder.path}/{file.name}" if folder.path else file.name
        try:
            total += count_records(manifest.format, destination.open(path))
        except ValueError as exc:
            failures.append(f"{file.name} {exc}")
    if failures:
        return "rows: " + "; ".join(failures[:3])
    if total != manifest.row_count:
        return f"rows: the files hold {total} records, the manifest says {manifest.row_count}"
    return None
