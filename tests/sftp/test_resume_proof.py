"""Proving a resumed partial file by reading it back, within the time budget, on the local stack.

The partner has no server hashing (``hashing: none``), so each resume reads the partial's prefix
back and compares it, block by block, with the CRC32Cs the checkpoint kept of what was sent.
transfer_sftp's handler runs with a budget of 0 s (tests/resume_kit.py): each invocation proves
at least PROOF_MIN_BYTES and stops, so a long prefix is proven across several invocations; then
it sends one chunk and stops. Between invocations the tests change the partial file on the
sshd's disk the way another writer would.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import google_crc32c

from devstack.state import StackInfo
from shared.config import Config
from shared.delivery.checkpoint import Checkpoint
from shared.destinations.sftp.blocks import BLOCK_BYTES, BLOCK_CHECK, BlockHasher, block_checksum
from shared.destinations.sftp.resume import PROOF_MIN_BYTES, PartialState
from shared.ids import DestinationId, Stage
from shared.messages import DeliveryReceipt
from tests.resume_kit import BigFile, deliver_in_steps
from tests.sftp import delivery_kit

stack, config, receipts = delivery_kit.stack, delivery_kit.config, delivery_kit.receipts

SIZE = 10 * BLOCK_BYTES + 4321  # eleven blocks: prefixes up to 10 MiB to prove
SFTP = DestinationId("sftp", "local")


def flip_byte(path: Path, offset: int) -> None:
    """Another writer changes one byte; the file's mtime moves (set apart from ours explicitly:
    mtimes have one-second resolution)."""
    mtime = path.stat().st_mtime
    with path.open("r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, (mtime - 100, mtime - 100))


def proof_of(last: Checkpoint) -> int:
    """How far the read-back proof got, per the checkpoint (0: none under way)."""
    proof = last.state.get("proof")
    return int(proof["offset"]) if proof else 0


def test_a_proof_spanning_invocations_completes_and_the_file_is_whole(
    stack: StackInfo, config: Config, receipts: Callable[[], list[DeliveryReceipt]]
) -> None:
    assert config.destinations.sftp["local"].hashing == "none"
    file = BigFile.written(config, SFTP, SIZE)
    landed = stack.sftp.directory / file.remote
    proofs: list[int] = []

    def between(last: Checkpoint) -> None:
        assert not landed.exists()
        proofs.append(proof_of(last))

    invocations, last = deliver_in_steps(stack, config, receipts, Stage.TRANSFER_SFTP, file, between)

    assert landed.read_bytes() == file.data
    assert PROOF_MIN_BYTES in proofs and 2 * PROOF_MIN_BYTES in proofs  # paused mid-proof, then went on
    assert last is not None and last.bytes_sent + (SIZE - last.bytes_done) == SIZE  # no byte sent twice
    assert invocations > 11


def test_a_partial_changed_between_proof_invocations_is_proven_again_from_byte_0(
    stack: StackInfo, config: Config, receipts: Callable[[], list[DeliveryReceipt]]
) -> None:
    file = BigFile.written(config, SFTP, SIZE)
    partial = stack.sftp.directory / (file.remote + ".partial")
    changed_at: list[int] = []
    after: list[Checkpoint] = []

    def between(last: Checkpoint) -> None:
        if changed_at:
            after.append(last)
        elif proof_of(last) > 0:
            # block 0 is already proven: only a proof that starts over notices the change
            flip_byte(partial, 10)
            changed_at.append(last.bytes_done)

    _, last = deliver_in_steps(stack, config, receipts, Stage.TRANSFER_SFTP, file, between)

    assert changed_at and after and after[0].bytes_done == BLOCK_BYTES  # caught at block 0: sent again from 0
    assert (stack.sftp.directory / file.remote).read_bytes() == file.data
    assert last is not None and last.bytes_sent + (SIZE - last.bytes_done) == SIZE + changed_at[0]


def test_a_corrupted_block_is_cut_and_resent_from_there(
    stack: StackInfo, config: Config, receipts: Callable[[], list[DeliveryReceipt]]
) -> None:
    file = BigFile.written(config, SFTP, SIZE)
    partial = stack.sftp.directory / (file.remote + ".partial")
    corrupted: list[int] = []

    def between(last: Checkpoint) -> None:
        if not corrupted and last.bytes_done == 8 * BLOCK_BYTES and proof_of(last) == 0:
            flip_byte(partial, 5 * BLOCK_BYTES + 777)
            corrupted.append(last.bytes_done)

    _, last = deliver_in_steps(stack, config, receipts, Stage.TRANSFER_SFTP, file, between)

    assert corrupted
    assert (stack.sftp.directory / file.remote).read_bytes() == file.data
    # blocks 5, 6 and 7 were sent twice; blocks 0-4, proven, were not
    assert last is not None and last.bytes_sent + (SIZE - last.bytes_done) == SIZE + 3 * BLOCK_BYTES


def test_block_hashes_do_not_depend_on_how_the_bytes_were_read() -> None:
    data = os.urandom(3 * BLOCK_BYTES + 99)
    whole = tuple(
        format(google_crc32c.value(data[i : i + BLOCK_BYTES]), "08x") for i in range(0, len(data), BLOCK_BYTES)
    )
    assert whole == tuple(block_checksum(data[i : i + BLOCK_BYTES]) for i in range(0, len(data), BLOCK_BYTES))
    for step in (1000, BLOCK_BYTES, BLOCK_BYTES + 1, len(data)):
        for wrap in (bytes, memoryview):
            hasher = BlockHasher()
            for i in range(0, len(data), step):
                hasher.update(wrap(data[i : i + step]))
            assert hasher.digests() == whole
    assert BlockHasher().digests() == ()


def test_a_checkpoint_keeps_its_blocks_only_with_the_check_that_made_them() -> None:
    blocks = ("0" * 8, "1" * 8)
    state = PartialState("/in/f.partial", BLOCK_BYTES + 1, "a" * 40, 7, blocks)
    raw = state.to_dict()
    assert raw["block_check"] == BLOCK_CHECK
    assert PartialState.from_dict(raw, "/in/f.partial") == state
    # a checkpoint written before the blocks were CRC32C (their SHA-1s, no block_check): the
    # blocks cannot be compared, the rest stands (the server's hash, or a restart, decides)
    before = {k: v for k, v in raw.items() if k != "block_check"} | {"blocks": ["b" * 40, "c" * 40]}
    assert PartialState.from_dict(before, "/in/f.partial") == PartialState(
        "/in/f.partial", BLOCK_BYTES + 1, "a" * 40, 7
    )
