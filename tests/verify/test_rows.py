"""``verify.rows``: delivered files read back as a consumer would; their records must add up to
the manifest's row count (shared/verify/rows.py), on the local stack with the memory destination."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import io
import json
from collections.abc import Callable

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shared.errors import TransientError
from shared.gcp import gcs
from shared.verify import readback
from tests.run_folders import run_manifest
from tests.verify.conftest import Run, VerifyStack

pytestmark = pytest.mark.stack


def parquet(rows: int) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table({"id": list(range(rows))}), out)
    return out.getvalue()


def deliver_run(vstack: VerifyStack, files: dict[str, bytes], fmt: str, row_count: int) -> Run:
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


def keep_counts(vstack: VerifyStack, run: Run, records: dict[str, int], *, sha1: str | None = None) -> str:
    """A record as an invocation that ran out of time leaves it: ``records`` counted in these
    files, each when it had the manifest's size and SHA-1 (``sha1``: other bytes of that size)."""
    name = readback.record_name(run.folder.prefix, "memory")
    files = {f.name: f for f in run.manifest.files}
    counted = {
        vstack.remote_path(run, n): {"size": files[n].size, "sha1": sha1 or files[n].sha1, "records": count}
        for n, count in records.items()
    }
    body = {"at": dt.datetime.now(dt.UTC).isoformat(), "files": {}, "records": counted}
    gcs.write(vstack.state_bucket, name, json.dumps(body).encode(), "application/json")
    return name


FIRST = next(iter(PARQUET_FILES))


@pytest.fixture
def delivered(vstack_factory: Callable[..., VerifyStack]) -> tuple[VerifyStack, Run]:
    """A stack verifying with verify.rows, and a run of two Parquet files (5 records) delivered."""
    vstack = vstack_factory(rows=True)
    return vstack, deliver_run(vstack, PARQUET_FILES, "PARQUET", 5)


def test_records_counted_by_an_earlier_invocation_are_used_then_forgotten(delivered: tuple[VerifyStack, Run]) -> None:
    """verify.rows reads every file back, at a destination that hashes too: a run of many GB
    takes more than one invocation, so what one counted is kept for the redelivery."""
    vstack, run = delivered
    name = keep_counts(vstack, run, {FIRST: 1})  # the record says 1 where the file holds 2: not read again
    vstack.request({"run_id": run.run_id})
    assert [r.status for r in vstack.results_for(run)] == ["in_sync", "mismatch"]
    assert "rows: the files hold 4 records, the manifest says 5" in (vstack.results_for(run)[-1].reason or "")
    assert gcs.read_bytes(vstack.state_bucket, name) is None  # the verification completed: forgotten
    vstack.request({"run_id": run.run_id})  # a later verification counts every file again
    assert vstack.results_for(run)[-1].status == "in_sync"


def test_a_count_kept_for_other_bytes_is_not_used(delivered: tuple[VerifyStack, Run]) -> None:
    vstack, run = delivered
    keep_counts(vstack, run, {FIRST: 1}, sha1="0" * 40)
    vstack.request({"run_id": run.run_id})
    assert [r.status for r in vstack.results_for(run)] == ["in_sync", "in_sync"]


def test_counting_out_of_time_is_retried_and_reports_nothing(
    delivered: tuple[VerifyStack, Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    vstack, run = delivered
    save_s = readback.SAVE_S
    monkeypatch.setattr(readback, "SAVE_S", 10_000.0)  # the invocation's time has run out already
    with pytest.raises(TransientError, match=r"not done when the time for it ran out.*the redelivery goes on"):
        vstack.request({"run_id": run.run_id})
    assert len(vstack.results_for(run)) == 1  # the receipt's verification only
    monkeypatch.setattr(readback, "SAVE_S", save_s)
    vstack.request({"run_id": run.run_id})  # the redelivery, with a whole invocation
    assert [r.status for r in vstack.results_for(run)] == ["in_sync", "in_sync"]


def test_a_whole_invocation_that_counted_nothing_is_failed_with_the_fix(
    delivered: tuple[VerifyStack, Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    vstack, run = delivered
    monkeypatch.setattr(readback, "SAVE_S", 10_000.0)
    monkeypatch.setattr(readback, "WHOLE_S", -20_000.0)  # as if it had started with the whole budget
    vstack.request({"run_id": run.run_id})  # acked: a retry would run out the same way
    failed = vstack.results_for(run)[-1]
    assert failed.status == "failed", failed
    assert "read back nothing: count its records with `offsite verify RUN_ID`" in (failed.reason or "")


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
