"""One run makes one manifest-copy delivery per destination (shared/delivery/manifest_copy.py):
the real upload functions on the local stack (GCS emulator, Pub/Sub, Box API server, sshd) get
every trigger of the copy — each data file, ``_manifest.json``'s event, ``_manifest.delivered.json``'s
event — in either order, and the ``deliveries`` topic carries exactly one receipt for the copy
per destination."""

from __future__ import annotations

import os
from collections import Counter

import pytest

from shared.messages import DeliveryReceipt
from tests.run_folders import run_manifest
from tests.verify.conftest import Run, VerifyStack

FILES = {"orders_20250108-000000000000.parquet": os.urandom(50_000)}
BOTH = ("box", "sftp:local")


def receipts(vstack: VerifyStack) -> list[DeliveryReceipt]:
    found: list[DeliveryReceipt] = []
    for _ in range(3):  # the emulator may answer a pull before all messages are visible
        while batch := vstack.admin.pull(vstack.receipts_sub, 100):
            found.extend(DeliveryReceipt.from_json(m["data_bytes"]) for m in batch)
    return found


def write_manifest(vstack: VerifyStack, run: Run) -> None:
    """What export_table writes last (no delivery: the upload functions below do that)."""
    manifest = run_manifest(vstack.bucket, run.folder, run.files, run.generations, run.destinations)
    vstack.write_manifest(run, raw=manifest.to_json())


def copy_receipts(vstack: VerifyStack, run: Run) -> Counter[str]:
    return Counter(r.destination for r in receipts(vstack) if r.object == run.folder.delivered_manifest_name)


@pytest.mark.parametrize("manifest_first", [True, False], ids=["manifest-before-data", "manifest-after-data"])
def test_one_run_one_manifest_copy_receipt_per_destination(vstack: VerifyStack, manifest_first: bool) -> None:
    run = vstack.new_run(FILES, BOTH, manifest=False)
    if manifest_first:  # the data file's delivery finds the manifest and sends the copy
        write_manifest(vstack, run)
    for name in sorted(run.files):
        vstack.upload(run, name)
    if not manifest_first:  # every data file is there: the manifest's own event sends the copy
        write_manifest(vstack, run)
    vstack.upload(run, "_manifest.json")  # its finalize event, whatever came first
    vstack.upload(run, "_manifest.delivered.json")  # the sealed manifest's own finalize event
    assert copy_receipts(vstack, run) == Counter(BOTH)
