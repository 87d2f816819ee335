"""Verify against the stack's real SFTP server and Box API, with the real upload functions run in this
process (storage CloudEvents in, receipts out on ``deliveries``, fed to verify as the push would)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.gcp import gcs
from shared.verify.heal import HEAL_DESTINATION_KEY
from tests.verify.conftest import Run, VerifyStack

pytestmark = pytest.mark.stack

FILES = {
    "orders_20250108-000000000000.parquet": os.urandom(150_000),
    "orders_20250108-000000000001.parquet": os.urandom(70_000),
}
SECOND = "orders_20250108-000000000001.parquet"
BOTH = ("box", "sftp:local")


def sftp_file(vstack: VerifyStack, run: Run, name: str) -> Path:
    """The delivered file on the SFTP server's disk (the partner directory is local here)."""
    return Path(vstack.info.sftp.directory) / vstack.remote_path(run, name, "sftp:local")


def deliver_everything(vstack: VerifyStack, run: Run) -> None:
    for name in sorted(run.files):
        vstack.upload(run, name)
    assert vstack.pump_receipts() == (len(run.files) + 1) * len(run.destinations)  # + the manifest copy


def test_clean_run_is_in_sync_once_per_destination_with_sha1(vstack: VerifyStack) -> None:
    run = vstack.new_run(FILES, BOTH)
    deliver_everything(vstack, run)
    vstack.manifest_finalized(run)
    results = vstack.results_for(run)
    assert sorted((r.destination, r.status, r.check) for r in results) == [
        ("box", "in_sync", "sha1"),
        ("sftp:local", "in_sync", "sha1"),  # read back and hashed: this partner's server cannot hash
    ]
    for r in results:
        assert r.files_present == r.files_expected == 2 and r.bytes_present == sum(map(len, FILES.values()))


def test_file_deleted_from_sftp_is_a_mismatch_and_self_heal_restores_it(vstack: VerifyStack) -> None:
    run = vstack.new_run(FILES, BOTH)
    deliver_everything(vstack, run)
    assert {r.destination for r in vstack.results_for(run)} == set(BOTH)
    path = sftp_file(vstack, run, SECOND)
    path.unlink()

    vstack.request({"run_id": run.run_id, "destination": "sftp:local"})
    mismatch = vstack.results_for(run, "sftp:local")[-1]
    assert mismatch.status == "mismatch" and mismatch.missing == [SECOND] and mismatch.heal_attempts == 1
    live = gcs.stat(vstack.bucket, run.folder.prefix + SECOND)
    assert live is not None and live.metadata[HEAL_DESTINATION_KEY] == "sftp:local"

    vstack.upload(run, SECOND)  # the rewrite's OBJECT_FINALIZE reaches the upload functions
    vstack.pump_receipts()
    assert path.read_bytes() == FILES[SECOND]
    sftp_results = vstack.results_for(run, "sftp:local")
    assert [(r.status, r.heal_attempts) for r in sftp_results] == [("in_sync", 0), ("mismatch", 1), ("in_sync", 1)]
    assert [r.status for r in vstack.results_for(run, "box")] == ["in_sync"]  # Box was not touched


@pytest.mark.parametrize(
    "shift_ns",
    [
        pytest.param(60 * 10**9, id="damaged-later"),
        # bit rot, or a partner's tool that keeps times (cp -p, rsync -t): size and mtime as
        # delivered, so only the bytes tell; the heal must not trust what the ledger remembers
        pytest.param(0, id="size-and-mtime-kept"),
    ],
)
def test_corrupted_byte_on_sftp_is_hash_differs_and_healed(vstack: VerifyStack, shift_ns: int) -> None:
    run = vstack.new_run(FILES, ("sftp:local",))
    deliver_everything(vstack, run)
    path = sftp_file(vstack, run, SECOND)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    stat = path.stat()
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns + shift_ns, stat.st_mtime_ns + shift_ns))

    vstack.request({"run_id": run.run_id})
    result = vstack.results_for(run)[-1]
    assert result.status == "mismatch" and result.hash_differs == [SECOND] and result.size_differs == []
    assert result.check == "sha1"
    vstack.upload(run, SECOND)
    vstack.pump_receipts()
    assert path.read_bytes() == FILES[SECOND]
    assert [r.status for r in vstack.results_for(run)] == ["in_sync", "mismatch", "in_sync"]


def test_extra_file_at_sftp_is_named(vstack: VerifyStack) -> None:
    run = vstack.new_run(FILES, ("sftp:local",))
    deliver_everything(vstack, run)
    extra = sftp_file(vstack, run, "orders_20250108-000000000007.parquet")
    extra.write_bytes(b"not from this export")
    vstack.request({"run_id": run.run_id})
    result = vstack.results_for(run)[-1]
    assert result.status == "mismatch" and result.extra == ["orders_20250108-000000000007.parquet"]


def test_damaged_manifest_copy_on_sftp_is_hash_differs_and_healed(vstack: VerifyStack) -> None:
    run = vstack.new_run(FILES, BOTH)
    deliver_everything(vstack, run)
    path = sftp_file(vstack, run, "_manifest.json")
    delivered = gcs.read_bytes(vstack.bucket, run.folder.delivered_manifest_name)
    assert path.read_bytes() == delivered  # the manifest with every file's SHA-1, after the data files
    data = bytearray(path.read_bytes())
    data[10] ^= 0x01
    stat = path.stat()
    path.write_bytes(bytes(data))
    os.utime(path, (stat.st_atime + 60, stat.st_mtime + 60))

    vstack.request({"run_id": run.run_id, "destination": "sftp:local"})
    result = vstack.results_for(run, "sftp:local")[-1]
    assert result.status == "mismatch" and result.hash_differs == ["_manifest.json"] and result.heal_attempts == 1
    assert (result.files_present, result.files_expected) == (2, 2)  # counts are of data files
    vstack.upload(run, "_manifest.delivered.json")  # the heal's rewrite reaches the upload functions
    vstack.pump_receipts()
    assert path.read_bytes() == delivered
    assert [r.status for r in vstack.results_for(run, "sftp:local")] == ["in_sync", "mismatch", "in_sync"]


def test_run_delivered_before_manifest_copies_gets_its_copy_by_self_heal(vstack: VerifyStack) -> None:
    """Runs delivered by a version without manifest copies have neither the copy at the
    destination nor ``_manifest.delivered.json``: self-heal writes the latter and delivers it."""
    run = vstack.new_run(FILES, ("sftp:local",))
    deliver_everything(vstack, run)
    path = sftp_file(vstack, run, "_manifest.json")
    path.unlink()  # as an older version left it: data files only
    assert gcs.delete(vstack.bucket, run.folder.delivered_manifest_name)

    vstack.request({"run_id": run.run_id, "destination": "sftp:local"})
    result = vstack.results_for(run, "sftp:local")[-1]
    assert result.status == "mismatch" and result.missing == ["_manifest.json"] and result.heal_attempts == 1
    sealed = gcs.read_bytes(vstack.bucket, run.folder.delivered_manifest_name)
    assert sealed is not None  # written by the heal, with every file's SHA-1
    vstack.upload(run, "_manifest.delivered.json")
    vstack.pump_receipts()
    assert path.read_bytes() == sealed
    assert [r.status for r in vstack.results_for(run, "sftp:local")][-1] == "in_sync"
