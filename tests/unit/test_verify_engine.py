"""The verify engine on the in-memory destination: every outcome, leftovers, weaker checks, shared folders."""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import hashlib
import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

import pytest

import shared.verify.engine
from shared.destinations.base import Abilities, DeliveryLedger, FolderLayout, PutResult, RemoteFile
from shared.destinations.memory import MemoryDestination
from shared.layout import RemoteFolder, RunFolder, default_file_name, remote_folder
from shared.manifest import Manifest, ManifestFile
from shared.messages import Source
from shared.verify.engine import SHA1, SIZE_ONLY, NoTimeLeft, ReadBack, compare

DAY = dt.date(2025, 1, 8)
TABLE = Source(mode="table", project="p", dataset="sales", table="orders")
QUERY = Source(mode="query", project="p", export="product_data")
CONTENT = {
    "orders_20250108-000000000000.parquet": b"first shard " * 100,
    "orders_20250108-000000000001.parquet": b"second shard " * 70,
}


def make_manifest(run: RunFolder, files: dict[str, bytes], file_name: str, *, with_sha1: bool = True) -> Manifest:
    return Manifest(
        run_id=run.run_id,
        source=run.source,
        date=run.date.isoformat(),
        bucket="b",
        prefix=run.prefix,
        format="PARQUET",
        compression="SNAPPY",
        file_name=file_name,
        destinations=("memory",),
        job_id="job",
        row_count=10,
        schema=[],
        files=tuple(
            ManifestFile(
                name=name,
                object=run.prefix + name,
                size=len(data),
                sha1=hashlib.sha1(data).hexdigest() if with_sha1 else None,
            )
            for name, data in sorted(files.items())
        ),
        created_at="2025-01-08T02:00:00Z",
    )


def sha1_of(files: dict[str, bytes]):
    def source_sha1(f: ManifestFile) -> str:
        return hashlib.sha1(files[f.name]).hexdigest()

    return source_sha1


def deliver(dest: MemoryDestination, folder: str, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        dest.put(f"{folder}/{name}" if folder else name, io.BytesIO(data), len(data))


def flip_byte(dest: MemoryDestination, folder: str, name: str, index: int, mask: int) -> None:
    """Damage one delivered shard of CONTENT without changing its size."""
    damaged = bytearray(CONTENT[name])
    damaged[index] ^= mask
    dest.corrupt(f"{folder}/{name}", bytes(damaged))


@pytest.fixture
def table_run() -> tuple[RunFolder, Manifest, str]:
    run = RunFolder("exports", TABLE, DAY, "r1")
    template = default_file_name("orders", "PARQUET")
    folder = remote_folder("gcp_tree", run, template)
    return run, make_manifest(run, CONTENT, template), folder.path


def check(manifest: Manifest, dest, run: RunFolder, **kw):
    folder = remote_folder("flat" if kw.pop("flat", False) else "gcp_tree", run, manifest.file_name)
    kw.setdefault("source_sha1", sha1_of(CONTENT))
    return compare(manifest, dest, folder, **kw)


def test_in_sync_with_sha1_from_the_listing(table_run) -> None:
    run, manifest, folder = table_run
    dest = MemoryDestination()
    deliver(dest, folder, CONTENT)
    result = check(manifest, dest, run)
    assert result.in_sync and result.complete
    assert result.check == SHA1 and result.check_note is None
    assert (result.files_expected, result.files_present) == (2, 2)
    assert result.bytes_expected == result.bytes_present == sum(len(v) for v in CONTENT.values())
    assert result.summary() == "in sync"


def test_missing_file_is_named(table_run) -> None:
    run, manifest, folder = table_run
    dest = MemoryDestination()
    deliver(dest, folder, {k: v for k, v in CONTENT.items() if k.endswith("0.parquet")})
    result = check(manifest, dest, run)
    assert result.missing == ("orders_20250108-000000000001.parquet",)
    assert not result.complete and not result.in_sync
    assert result.files_present == 1 and result.repairable == result.missing
    assert "1 missing (orders_20250108-000000000001.parquet)" in result.summary()


def test_extra_file_and_files_in_subfolders_are_extra(table_run) -> None:
    run, manifest, folder = table_run
    dest = MemoryDestination()
    deliver(dest, folder, CONTENT)
    deliver(dest, folder, {"notes.txt": b"x", "sub/old.parquet": b"y"})
    result = check(manifest, dest, run)
    assert result.complete and not result.in_sync
    assert result.extra == ("notes.txt", "sub/old.parquet")
    assert result.repairable == ()  # extras are reported, never deleted


def test_size_differs(table_run) -> None:
    run, manifest, folder = table_run
    dest = MemoryDestination()
    deliver(dest, folder, CONTENT)
    name = "orders_20250108-000000000001.parquet"
    dest.corrupt(f"{folder}/{name}", CONTENT[name][:-3])
    result = check(manifest, dest, run)
    assert result.size_differs == (name,) and result.hash_differs == ()
    assert "expected" in result.details[name] and result.repairable == (name,)


def test_hash_differs_same_size(table_run) -> None:
    run, manifest, folder = table_run
    dest = MemoryDestination()
    deliver(dest, folder, CONTENT)
    name = "orders_20250108-000000000000.parquet"
    flip_byte(dest, folder, name, 17, 0x01)
    result = check(manifest, dest, run)
    assert result.hash_differs == (name,) and result.size_differs == ()
    assert result.details[name].startswith("sha1 ")


def test_partial_leftovers_are_extra_and_named(table_run) -> None:
    run, manifest, folder = table_run
    dest = MemoryDestination()
    deliver(dest, folder, {k: v for k, v in CONTENT.items() if k.endswith("0.parquet")})
    deliver(dest, folder, {"orders_20250108-000000000001.parquet.partial": b"half"})
    result = check(manifest, dest, run)
    assert result.missing == ("orders_20250108-000000000001.parquet",)
    assert result.extra == ("orders_20250108-000000000001.parquet.partial",)
    assert result.partial == result.extra
    assert ".partial" in result.summary()


def query_run(layout: FolderLayout, files: dict[str, bytes]) -> tuple[Manifest, RemoteFolder]:
    """The manifest of a query export's run r9 of ``files`` and its folder in ``layout``."""
    run = RunFolder("exports", QUERY, DAY, "r9")
    template = "Product_{YYYYMMDD}-*.csv.gz"
    return make_manifest(run, files, template), remote_folder(layout, run, template)


def test_shared_folder_counts_only_this_runs_names() -> None:
    files = {"Product_20250108-000000000000.csv.gz": b"a,b\n" * 50}
    manifest, folder = query_run("gcp_tree", files)
    assert not folder.exclusive
    dest = MemoryDestination()
    deliver(dest, folder.path, files)
    deliver(
        dest,
        folder.path,
        {
            "Product_20250107-000000000000.csv.gz": b"yesterday",  # another day's run: not ours
            "README.txt": b"partner's own file",  # not ours
            "archive/Product_20250108-000000000009.csv.gz": b"sub-folder: not ours",
            "Product_20250108-000000000001.csv.gz": b"a shard this run did not make",  # ours: extra
            "Product_20250108-000000000002.csv.gz.partial": b"left over",  # ours: extra, partial
        },
    )
    result = compare(manifest, dest, folder, source_sha1=sha1_of(files))
    assert result.missing == () and result.size_differs == () and result.hash_differs == ()
    assert result.extra == ("Product_20250108-000000000001.csv.gz", "Product_20250108-000000000002.csv.gz.partial")
    assert result.partial == ("Product_20250108-000000000002.csv.gz.partial",)


def test_flat_folder_at_the_root() -> None:
    files = {"Product_20250108-000000000000.csv.gz": b"x" * 10}
    manifest, folder = query_run("flat", files)
    dest = MemoryDestination()
    deliver(dest, "", {**files, "other.csv": b"nope", "Product_20250108-000000000000.csv.gz.upload": b"?"})
    result = compare(manifest, dest, folder, source_sha1=sha1_of(files), partial_suffixes=(".upload",))
    assert result.in_sync is False and result.extra == ("Product_20250108-000000000000.csv.gz.upload",)
    assert result.partial == result.extra


class NoHashes(MemoryDestination):
    """A server that reports sizes only (an SFTP server without hashing), but can be read back."""

    def __init__(self) -> None:
        super().__init__("sftp:acme", Abilities(partial_suffix=".partial", layout="nested", needs_ledger=True))
        self.opened: list[str] = []

    def list(self, prefix: str = "") -> Iterator[RemoteFile]:
        for f in super().list(prefix):
            yield RemoteFile(f.path, f.size)

    def open(self, path: str, start: int = 0) -> BinaryIO:
        self.opened.append(path)
        return super().open(path, start)


class SizesOnly:
    """Neither hashes nor read-back: only the Destination protocol over a NoHashes store."""

    abilities = Abilities(partial_suffix=".partial", layout="flat")

    def __init__(self, inner: NoHashes) -> None:
        self.inner = inner
        self.id = inner.id
        self.name = inner.name

    def put(
        self, path: str, source: BinaryIO, size: int, *, sha1: str | None = None, ledger: DeliveryLedger | None = None
    ) -> PutResult:
        return self.inner.put(path, source, size, sha1=sha1)

    def location(self, path: str) -> str:
        return path

    def close(self) -> None:
        pass

    def stat(self, path: str) -> RemoteFile | None:
        return self.inner.stat(path)

    def list(self, prefix: str = "") -> Iterator[RemoteFile]:
        return self.inner.list(prefix)

    def delete(self, path: str) -> None:
        self.inner.delete(path)

    def mkdirs(self, path: str) -> None:
        self.inner.mkdirs(path)

    def delete_folder(self, path: str, *, recursive: bool = True) -> bool:
        return self.inner.delete_folder(path, recursive=recursive)


DAMAGED = "orders_20250108-000000000001.parquet"


@pytest.fixture
def damaged_on_no_hashes(table_run) -> tuple[RunFolder, Manifest, str, NoHashes]:
    """CONTENT delivered to a server that reports no hashes, with DAMAGED corrupted at the same size."""
    run, manifest, folder = table_run
    dest = NoHashes()
    deliver(dest, folder, CONTENT)
    flip_byte(dest, folder, DAMAGED, 0, 0xFF)
    return run, manifest, folder, dest


def test_download_hashing_when_the_destination_cannot_hash(damaged_on_no_hashes) -> None:
    run, manifest, folder, dest = damaged_on_no_hashes
    result = check(manifest, dest, run)
    assert result.check == SHA1 and result.check_note is None
    assert result.hash_differs == (DAMAGED,)
    assert sorted(dest.opened) == sorted(f"{folder}/{n}" for n in CONTENT)


def test_size_only_is_stated_when_download_hashing_is_off(damaged_on_no_hashes) -> None:
    run, manifest, _, dest = damaged_on_no_hashes
    result = check(manifest, dest, run, download_hashes=False)
    assert result.check == SIZE_ONLY
    assert "download hashing is switched off" in (result.check_note or "")
    assert result.in_sync and dest.opened == []  # a same-size corruption cannot be seen: and it says so


def test_size_only_is_stated_when_the_destination_cannot_be_read(table_run) -> None:
    run, manifest, folder = table_run
    inner = NoHashes()
    deliver(inner, folder, CONTENT)
    result = check(manifest, SizesOnly(inner), run)
    assert result.check == SIZE_ONLY and "cannot be read back" in (result.check_note or "")


def test_size_only_when_the_source_has_no_hashes(table_run) -> None:
    run, manifest, folder = table_run
    dest = MemoryDestination()
    deliver(dest, folder, CONTENT)
    result = check(manifest, dest, run, source_sha1=None)
    assert result.check == SIZE_ONLY and "no SHA-1" in (result.check_note or "")


def test_empty_destination_folder_means_everything_missing(table_run) -> None:
    run, manifest, _ = table_run
    result = check(manifest, MemoryDestination(), run)
    assert result.missing == tuple(sorted(CONTENT)) and result.files_present == 0 and result.bytes_present == 0


def test_the_engine_imports_no_backend_and_no_cloud_client() -> None:
    tree = ast.parse(Path(shared.verify.engine.__file__).read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
    forbidden = ("box", "sftp", "factory", "gcp", "google", "paramiko", "requests")
    offending = sorted(name for name in imported if any(part in name.split(".") or part in name for part in forbidden))
    assert offending == [], offending
    assert "shared.destinations.base" in imported


def test_a_read_back_still_going_at_the_deadline_stops_inside_the_file() -> None:
    """The deadline is checked between the blocks of one file read back, not only between files:
    one file of many GB from a server that cannot hash must not run an invocation out."""
    run = RunFolder("exports", TABLE, DAY, "r1")
    template = default_file_name("orders", "PARQUET")
    big = {"orders_20250108-000000000000.parquet": bytes(5 * 1024 * 1024)}
    folder = remote_folder("gcp_tree", run, template)
    dest = NoHashes()
    deliver(dest, folder.path, big)
    deadline = time.monotonic() + 1.0

    def slow_source_sha1(f: ManifestFile) -> str:  # asked after the file's own check, before its read-back
        time.sleep(max(0.0, deadline - time.monotonic()) + 0.05)
        return sha1_of(big)(f)

    manifest = make_manifest(run, big, template)
    with pytest.raises(NoTimeLeft) as stopped:
        compare(manifest, dest, folder, source_sha1=slow_source_sha1, deadline=deadline)
    assert str(stopped.value) == (
        f"reading {folder.path}/orders_20250108-000000000000.parquet back from sftp:acme: not done when the"
        " time for it ran out (0 of 5,242,880 bytes read)"
    )
    assert compare(manifest, dest, folder, source_sha1=sha1_of(big), deadline=time.monotonic() + 60).in_sync


def test_what_a_comparison_read_back_before_its_time_ran_out_is_not_read_again(table_run) -> None:
    """The first shard is read back; the time runs out before the second (its source SHA-1 is
    asked first, and takes the rest of the time). The next comparison with the same ReadBack
    downloads only the second."""
    run, manifest, folder = table_run
    dest = NoHashes()
    deliver(dest, folder, CONTENT)
    first, second = sorted(CONTENT)
    deadline = time.monotonic() + 1.0

    def slow_for_the_second(f: ManifestFile) -> str:
        if f.name == second:
            time.sleep(max(0.0, deadline - time.monotonic()) + 0.05)
        return sha1_of(CONTENT)(f)

    read_back = ReadBack()
    with pytest.raises(NoTimeLeft, match=rf"reading {folder}/{second} back from sftp:acme: .*\(0 of "):
        check(manifest, dest, run, source_sha1=slow_for_the_second, deadline=deadline, read_back=read_back)
    assert read_back.files == {
        f"{folder}/{first}": (len(CONTENT[first]), None, hashlib.sha1(CONTENT[first]).hexdigest())
    }
    assert dest.opened == [f"{folder}/{first}", f"{folder}/{second}"]  # the second opened, 0 bytes read

    result = check(manifest, dest, run, deadline=time.monotonic() + 60, read_back=read_back)
    assert result.in_sync and dest.opened == [f"{folder}/{first}", f"{folder}/{second}", f"{folder}/{second}"]
    assert set(read_back.files) == {f"{folder}/{first}", f"{folder}/{second}"}
    # a file whose size is not the one read back is read again
    read_back.files[f"{folder}/{first}"] = (1, None, "0" * 40)
    assert check(manifest, dest, run, read_back=read_back).in_sync and dest.opened.count(f"{folder}/{first}") == 2


def test_a_file_read_again_because_it_changed_counts_as_read() -> None:
    """What an invocation read is counted by reads, not by new names: a file whose size or mtime
    changed since the record, read again, is progress (shared/verify/readback.py decides by it)."""
    read_back = ReadBack({"a": (3, 100, "0" * 40)})
    changed = RemoteFile("a", 3, mtime=101)
    assert read_back.sha1_of(changed) is None and read_back.read == 0
    read_back.add(changed, "1" * 40)
    assert read_back.read == 1 and len(read_back.files) == 1 and read_back.sha1_of(changed) == "1" * 40


def test_counting_records_stops_at_the_deadline_and_keeps_what_it_counted() -> None:
    """verify.rows reads every file back: past its deadline it stops (NoTimeLeft) before the next
    read, and what it counted is kept in the ReadBack (by path, size and SHA-1) and not read again."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from shared.verify.rows import rows_note

    def parquet(rows: int) -> bytes:
        out = io.BytesIO()
        pq.write_table(pa.table({"id": list(range(rows))}), out)
        return out.getvalue()

    run = RunFolder("exports", TABLE, DAY, "r1")
    template = default_file_name("orders", "PARQUET")
    files = {"orders_20250108-000000000000.parquet": parquet(2), "orders_20250108-000000000001.parquet": parquet(3)}
    first, second = sorted(files)
    folder = remote_folder("gcp_tree", run, template)
    dest = MemoryDestination()
    deliver(dest, folder.path, files)
    manifest = dataclasses.replace(make_manifest(run, files, template), row_count=5)
    sha1 = {n: hashlib.sha1(d).hexdigest() for n, d in files.items()}

    counted = ReadBack(records={f"{folder.path}/{first}": (len(files[first]), sha1[first], 1)})
    with pytest.raises(NoTimeLeft) as stopped:
        rows_note(manifest, dest, folder, deadline=time.monotonic() - 1, counted=counted)
    assert str(stopped.value) == (
        f"counting the records of {folder.path}/{second} at memory: not done when the time for it ran out"
        f" (0 of {len(files[second]):,} bytes read)"
    )
    assert counted.read == 0
    # the kept count (1, where the file holds 2) stands for the first file: it is not read again
    note = rows_note(manifest, dest, folder, deadline=time.monotonic() + 60, counted=counted)
    assert note == "rows: the files hold 4 records, the manifest says 5"
    assert counted.read == 1 and counted.records[f"{folder.path}/{second}"] == (len(files[second]), sha1[second], 3)
    again = ReadBack.from_json(counted.to_json())  # as the state bucket keeps it between invocations
    assert (again.files, again.records, again.read) == (counted.files, counted.records, 0)
    # a count kept for other bytes is not used
    counted.records[f"{folder.path}/{first}"] = (len(files[first]), "0" * 40, 1)
    assert rows_note(manifest, dest, folder, counted=counted) is None


def test_a_large_parquet_file_is_counted_from_its_two_ends_only() -> None:
    """verify.rows needs only a Parquet file's footer: a file larger than the tail it keeps is
    read at its first bytes and, by a ranged read, its last TAIL_BYTES, not downloaded whole."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from shared.verify.rows import TAIL_BYTES, rows_note

    class Counting(MemoryDestination):
        def __init__(self) -> None:
            super().__init__()
            self.reads: list[tuple[int, int]] = []  # (start, bytes read) per open
            self.on_ranged_open: Callable[[], None] = lambda: None

        def open(self, path: str, start: int = 0) -> BinaryIO:
            if start:
                self.on_ranged_open()
            stream, reads, at = super().open(path, start), self.reads, len(self.reads)
            reads.append((start, 0))

            class Counted(io.RawIOBase):
                def readable(self) -> bool:
                    return True

                def readinto(self, buffer: Any) -> int:
                    data = stream.read(len(buffer))
                    buffer[: len(data)] = data
                    reads[at] = (start, reads[at][1] + len(data))
                    return len(data)

            return cast(BinaryIO, io.BufferedReader(Counted(), buffer_size=64 * 1024))

    out = io.BytesIO()
    rows = 3_000_000
    pq.write_table(pa.table({"v": np.random.default_rng(1).integers(0, 2**62, rows)}), out, compression="none")
    data = out.getvalue()
    assert len(data) > 2 * TAIL_BYTES
    run = RunFolder("exports", TABLE, DAY, "r1")
    template = default_file_name("orders", "PARQUET")
    files = {"orders_20250108-000000000000.parquet": data}
    folder = remote_folder("gcp_tree", run, template)
    dest = Counting()
    deliver(dest, folder.path, files)
    manifest = dataclasses.replace(make_manifest(run, files, template), row_count=rows)
    assert rows_note(manifest, dest, folder) is None
    [(head_start, head_read), (tail_start, tail_read)] = dest.reads
    assert head_start == 0 and head_read <= 1024 * 1024  # the first block (4 bytes are used)
    assert tail_start == len(data) - TAIL_BYTES and tail_read == TAIL_BYTES
    assert rows_note(dataclasses.replace(manifest, row_count=rows + 1), dest, folder) == (
        f"rows: the files hold {rows} records, the manifest says {rows + 1}"
    )
    # the time runs out between the two reads: the message gives the offset the tail read had reached
    deadline = time.monotonic() + 1.0
    dest.on_ranged_open = lambda: time.sleep(max(0.0, deadline - time.monotonic()) + 0.05)
    with pytest.raises(NoTimeLeft) as stopped:
        rows_note(manifest, dest, folder, deadline=deadline)
    assert str(stopped.value) == (
        f"counting the records of {folder.path}/orders_20250108-000000000000.parquet at memory: not done when"
        f" the time for it ran out ({len(data) - TAIL_BYTES:,} of {len(data):,} bytes read)"
    )
