"""``verify.rows``: count the records of delivered files as a consumer would read them, so a file
whose bytes arrived intact but whose rows do not parse back is a mismatch, not in_sync.

Parquet: the footer's row count (pyarrow's reading of the footer). A file larger than
``TAIL_BYTES`` is read at its two ends only, by ranged reads (its first 4 bytes and its last
``TAIL_BYTES``): kilobytes to megabytes, whatever its size, not a download. Avro: the record count of each block (fastavro, streamed). CSV and
NDJSON (gzip-compressed as offsite exports them): a streaming parse — the csv module with
BigQuery's quoting (a quoted field may hold newlines) minus the header row; one JSON document
per non-empty line. Memory stays bounded for files of any size.
"""

from __future__ import annotations

import collections
import csv
import gzip
import io
import json
from collections.abc import Callable
from typing import Any

from shared.destinations.base import ByteStream, Destination, Readable
from shared.layout import RemoteFolder
from shared.manifest import Manifest, ManifestFile
from shared.verify.engine import ReadBack, stop_at

TAIL_BYTES = 8 * 1024 * 1024  # the longest Parquet footer read (BigQuery's are kilobytes)


class _Raw(io.RawIOBase):
    """``stream`` for a BufferedReader; ``before_block`` is told the file's offset reached (a
    stream from a ranged read starts at ``start``)."""

    def __init__(self, stream: ByteStream, before_block: Callable[[int], None] | None = None, start: int = 0) -> None:
        self.stream, self.before_block, self.done = stream, before_block, start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.before_block is not None:
            self.before_block(self.done)
        data = self.stream.read(len(buffer))
        buffer[: len(data)] = data
        self.done += len(data)
        return len(data)


def count_records(fmt: str, stream: ByteStream, *, before_block: Callable[[int], None] | None = None) -> int:
    """Records in one exported file of ``fmt``; ValueError (naming what failed) when it does not
    parse. ``before_block(bytes read so far)`` is called before each read and may raise to stop."""
    raw = io.BufferedReader(_Raw(stream, before_block), buffer_size=1024 * 1024)
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
    """The footer's row count. The file streams through, keeping its first 4 bytes and its last
    ``TAIL_BYTES`` (the footer, ending in its length and ``PAR1``): nothing else is kept, on disk
    or in memory (a function's /tmp is memory)."""
    return _footer_rows(*_ends(raw))


def parquet_rows_at_ends(
    destination: Readable, path: str, size: int, *, before_block: Callable[[int], None] | None = None
) -> int:
    """The footer's row count of a Parquet file of ``size`` bytes read at its two ends only (its
    first 4 bytes, then its last ``TAIL_BYTES`` by a ranged read): kilobytes of a file of any
    size, not a download. ValueError as :func:`count_records`."""
    tail_from = max(0, size - TAIL_BYTES)

    def read(start: int, limit: int) -> bytes:
        raw = io.BufferedReader(_Raw(destination.open(path, start), before_block, start), buffer_size=1024 * 1024)
        try:
            return raw.read(limit)
        except (OSError, EOFError) as exc:
            raise ValueError(f"does not parse as PARQUET: {exc}") from None
        finally:
            raw.close()

    return _footer_rows(read(0, 4), read(tail_from, size - tail_from))


def _footer_rows(head: bytes, tail: bytes) -> int:
    """The row count in the footer at the end of ``tail``; ``head``: the file's first 4 bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if head != b"PAR1" or len(tail) < 12 or tail[-4:] != b"PAR1":
        raise ValueError("does not parse as PARQUET: it does not begin and end with PAR1")
    footer_bytes = int.from_bytes(tail[-8:-4], "little") + 8
    if footer_bytes > len(tail):
        raise ValueError(f"does not parse as PARQUET: a footer of {footer_bytes} bytes (at most {TAIL_BYTES} are read)")
    try:
        return int(pq.read_metadata(pa.BufferReader(b"PAR1" + tail[-footer_bytes:])).num_rows)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise ValueError(f"does not parse as PARQUET: {exc}") from None


def _ends(raw: io.BufferedIOBase) -> tuple[bytes, bytes]:
    """The first 4 bytes of the stream and its last ``TAIL_BYTES`` or a little more (the blocks
    that hold them; the whole stream when shorter)."""
    head, blocks, held = b"", collections.deque[bytes](), 0
    while block := raw.read(1024 * 1024):
        if len(head) < 4:
            head += block[: 4 - len(head)]
        blocks.append(block)
        held += len(block)
        while held - len(blocks[0]) >= TAIL_BYTES:
            held -= len(blocks.popleft())
    return head, b"".join(blocks)


def rows_note(
    manifest: Manifest,
    destination: Destination,
    folder: RemoteFolder,
    *,
    deadline: float | None = None,
    counted: ReadBack | None = None,
) -> str | None:
    """None when the delivered files hold ``manifest.row_count`` records; else what differs.
    ``counted``: records counted earlier in this verification (a file of the same size and
    SHA-1 is not read again), and where each count is added; NoTimeLeft once ``deadline``
    (``time.monotonic()``) has passed, checked between reads (:mod:`shared.verify.readback`)."""
    if not isinstance(destination, Readable):
        return f"rows: {destination.name} cannot be read back to count records"
    counted = ReadBack() if counted is None else counted
    total, failures = 0, []
    for file in manifest.files:
        path = f"{folder.path}/{file.name}" if folder.path else file.name
        try:
            total += _records(manifest.format, destination, path, file, deadline, counted)
        except ValueError as exc:
            failures.append(f"{file.name} {exc}")
    if failures:
        return "rows: " + "; ".join(failures[:3])
    if total != manifest.row_count:
        return f"rows: the files hold {total} records, the manifest says {manifest.row_count}"
    return None


def _records(
    fmt: str, destination: Destination, path: str, file: ManifestFile, deadline: float | None, counted: ReadBack
) -> int:
    """The records of one delivered file: counted earlier, or read now (and kept in ``counted``)."""
    if (known := counted.records_of(path, file.size, file.sha1)) is not None:
        return known

    in_time = stop_at(deadline, f"counting the records of {path} at {destination.name}", file.size)
    assert isinstance(destination, Readable)  # rows_note checked
    if fmt == "PARQUET" and file.size > TAIL_BYTES + 4:  # only its ends are needed: two ranged reads
        records = parquet_rows_at_ends(destination, path, file.size, before_block=in_time)
    else:
        records = count_records(fmt, destination.open(path), before_block=in_time)
    counted.add_records(path, file.size, file.sha1, records)
    return records
