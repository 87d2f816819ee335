"""A delivery to Drive longer than its time budget: checkpoint, continuation, resume — through
upload_box's handler on the local stack (its Drive server), as tests/sftp/test_resume.py does
for SFTP.

The handler runs with a budget of 0 s, so each invocation sends one 256 KiB chunk of the
resumable upload and stops; it checkpoints in GCS (session URI, bytes held, their SHA-1) and
publishes on ``delivery-continuations``, which the test feeds back to the same handler
(tests/resume_kit.py). The file must appear in Drive only at the end, whole, once, with no
chunk sent twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from devstack.state import StackInfo
from shared.config import Config
from shared.config_load import from_dict, to_dict
from shared.delivery.checkpoint import Checkpoint
from shared.destinations.drive.destination import DriveDestination
from shared.ids import DestinationId, Stage
from shared.messages import DeliveryReceipt
from tests.resume_kit import BigFile, deliver_in_steps
from tests.sftp import delivery_kit

stack, receipts = delivery_kit.stack, delivery_kit.receipts
SIZE = 2 * 1024 * 1024 + 4321  # nine 256 KiB chunks
DRIVE = DestinationId("drive", "reports")


@pytest.fixture
def config(stack: StackInfo) -> Config:
    """The stack's config with 256 KiB chunks for drive:reports (its secrets are file: references;
    Box's literal token comes back masked, unused here)."""
    raw = to_dict(delivery_kit.load_config(stack.config_path, environ={}))
    raw["destinations"]["drive"]["reports"]["chunk_size_bytes"] = 256 * 1024
    return from_dict(Config, raw)


def test_a_drive_upload_longer_than_its_budget_arrives_whole_across_invocations(
    stack: StackInfo, config: Config, receipts: Callable[[], list[DeliveryReceipt]]
) -> None:
    file = BigFile.written(config, DRIVE, SIZE)
    drive = DriveDestination("reports", config.destinations.drive["reports"])

    def between(last: Checkpoint) -> None:
        assert 0 < last.bytes_done < SIZE
        assert drive.stat(file.remote) is None  # nothing visible in Drive until the last chunk

    invocations, last = deliver_in_steps(stack, config, receipts, Stage.UPLOAD_BOX, file, between)

    assert invocations >= 8
    (got,) = [r for r in receipts() if r.run_id == file.run.run_id]
    assert got.status == "uploaded" and got.sha1 == hashlib.sha1(file.data).hexdigest() and got.size == SIZE
    with drive.open(file.remote) as stream:
        assert stream.read() == file.data
    assert last is not None and last.bytes_sent + (SIZE - last.bytes_done) == SIZE  # no chunk sent twice
