"""``verify.rows``: delivered files read back as a consumer would; their records must add up to
the manifest's row count (shared/verify/rows.py), on the local stack with the memory destination."""

from __future__ import annotations

import dataclasses
import gzip
import io
from collections.abc import Callable

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shared.gcp import gcs
from tests.run_folders import run_manifest
from tests.verify.conftest import VerifyStack

pytestmark = pytest.mark.stack


def parquet(rows: int) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table({"id": list(range(rows))}), out)
    return out.getvalue()


def deliver_run(vstack: VerifyStack, files: dict[str, bytes], fmt: str, row_count: int):
    run = vstack.new_run(files, manifest=False)
    manifest = run_manifest(vstack.bucket, run.folder, run.files, run.generations, run.destinations)
    run.manifest = dataclasses.replace(manifest, format=fmt, row_count=row_count)
    gcs.write(vstack.bucket, run.folder.manifest_name, run.manifest.to_json(), "application/json")
    for receipt in vstack.deliver_all(run):
        vstack.receipt(receipt)
    return run


PARQUET_FILES = {"orders_20250108-000000000000.parquet": parquet(2), "orders_20250108-000000000001.parquet": parquet(3)}


def test_records_adding_up_are_in_sync(vstack_factory: Callable[..., VerifyStack]) -> None:
    vstack = vstack_factory(rows=True)
    run = deliver_run(vstack, PARQUET_FILES, "PARQUET", 5)
    [result] = vstack.results_for(run)
    assert result.status == "in_sync", result.reason


def test_records_not_adding_up_are_a_mismatch(vstack_factory: Callable[..., VerifyStack]) -> None:
    vstack = vstack_factory(rows=True)
    run = deliver_run(vstack, PARQUET_FILES, "PARQUET", 6)
    [result] = vstack.results_for(run)
    assert result.status == "mismatch"
    assert "rows: the files hold 5 records, the manifest says 6" in (result.reason or "")
    assert result.hash_differs == [] and result.missing == []  # the bytes themselves arrived intact


def test_csv_that_does_not_parse_back_is_a_mismatch(vstack_factory: Callable[..., VerifyStack]) -> None:
    vstack = vstack_factory(rows=True)
    broken = gzip.compress(b'id,name\n1,"never closed\n2,b\n')
    run = deliver_run(vstack, {"orders_20250108-000000000000.parquet": broken}, "CSV", 2)
    [result] = vstack.results_for(run)
    assert result.status == "mismatch" and "does not parse as CSV" in (result.reason or "")


def test_without_the_switch_bytes_alone_decide(vstack: VerifyStack) -> None:
    run = deliver_run(vstack, PARQUET_FILES, "PARQUET", 6)
    assert [r.status for r in vstack.results_for(run)] == ["in_sync"]


def test_a_large_parquet_file_is_counted_from_its_footer_without_holding_it() -> None:
    """The file streams through; only its end (the footer) is kept. Before, it was spooled
    whole (to memory up to 64 MB, then to /tmp, which is memory in a function too)."""
    import os
    import tracemalloc

    from shared.verify.rows import TAIL_BYTES, count_records

    rows = 3_000
    table = pa.table({"id": list(range(rows)), "blob": [os.urandom(16_000) for _ in range(rows)]})
    out = io.BytesIO()
    pq.write_table(table, out, row_group_size=500, compression="NONE")
    data = out.getvalue()
    assert len(data) > 40 * 1024 * 1024
    del table, out
    tracemalloc.start()
    try:
        assert count_records("PARQUET", io.BytesIO(data)) == rows
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * TAIL_BYTES, f"held {peak / 2**20:.0f} MiB of a {len(data) / 2**20:.0f} MiB file"
    for damaged in (data[: len(data) // 2], data[:-20], b"PAR1" + data[4 : len(data) // 2] + data[-8:]):
        with pytest.raises(ValueError, match="does not parse as PARQUET"):
            count_records("PARQUET", io.BytesIO(damaged))
