"""Continuing a partial file left by an earlier invocation, only where its bytes are proven.

A delivery that runs out of time stops at a chunk boundary and records :class:`PartialState`:
the partial file, how many bytes it holds, the SHA-1 of those bytes as they were read from the
source, the CRC32C of each 1 MiB block of them (shared/destinations/sftp/blocks.py) and the
file's mtime. The next invocation keeps a prefix only where it is proven equal — by the
server's hash of the whole partial (``hashing`` on), or else by reading it back block by block
— after checking that no other writer is growing the file (skipped when its size and mtime are
still the ones recorded at the pause). Bytes a dead invocation wrote past the checkpoint are cut.

The read-back works within the invocation's deadline like a transfer does: when time runs out
mid-proof, the state gains a :class:`Proof` (bytes proven so far, and the partial's size and
mtime then) and the delivery checkpoints and continues in a new invocation, which carries on
from there only if the size and mtime are unchanged (else it proves from byte 0 again). A block
that differs cuts the file there and the transfer resends from it; nothing is ever appended to
bytes we cannot vouch for.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from shared.destinations.sftp.blocks import BLOCK_BYTES, BLOCK_CHECK, block_checksum, block_count
from shared.destinations.sftp.connect import SftpSession, sftp_errors
from shared.destinations.sftp.files import attrs_of, is_file
from shared.destinations.sftp.hashing import remote_sha1
from shared.destinations.sftp.reader import PipelinedReader
from shared.errors import TransientError
from shared.log import get_logger

log = get_logger(__name__)

PROOF_MIN_BYTES = 4 * BLOCK_BYTES  # read back at least this much per invocation, however late it is


@dataclass(frozen=True)
class Proof:
    """A read-back under way: bytes [0, ``offset``) matched their blocks while the partial had
    ``size`` bytes and mtime ``mtime``."""

    offset: int
    size: int
    mtime: int


@dataclass(frozen=True)
class PartialState:
    """What an earlier invocation left: ``size`` bytes in ``partial`` whose SHA-1 is ``sha1``
    (``blocks``: the checksum of each block), the file's mtime right after (an untouched file still has it),
    and how far a read-back proof of them got."""

    partial: str
    size: int
    sha1: str
    mtime: int = -1
    blocks: tuple[str, ...] = ()
    proof: Proof | None = None

    def to_dict(self) -> dict[str, Any]:
        raw: dict[str, Any] = {"partial": self.partial, "size": self.size, "sha1": self.sha1, "mtime": self.mtime}
        raw["blocks"], raw["block_check"] = list(self.blocks), BLOCK_CHECK
        if self.proof is not None:
            raw["proof"] = dataclasses.asdict(self.proof)
        return raw

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None, partial: str) -> PartialState | None:
        """The state if it is about ``partial`` and well-formed; None otherwise (restart)."""
        if not raw:
            return None
        try:
            proof = raw.get("proof")
            state = cls(
                str(raw["partial"]),
                int(raw["size"]),
                str(raw["sha1"]),
                int(raw.get("mtime", -1)),
                # blocks checked another way (SHA-1, before) cannot be compared: the server's hash
                # of the whole partial, or a restart, decides instead
                tuple(str(b) for b in raw.get("blocks") or ()) if raw.get("block_check") == BLOCK_CHECK else (),
                Proof(int(proof["offset"]), int(proof["size"]), int(proof["mtime"])) if proof else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        if state.blocks and len(state.blocks) != block_count(state.size):
            state = dataclasses.replace(state, blocks=(), proof=None)  # not ours to read: no block proof
        return state if state.partial == partial and state.size > 0 else None


@dataclass(frozen=True)
class Keep:
    """Resume at ``offset``: the partial's first ``offset`` bytes are proven. The source's first
    ``offset`` bytes must then hash to ``sha1`` (when known) and to ``blocks``."""

    offset: int
    sha1: str | None = None
    blocks: tuple[str, ...] = ()


RESTART = Keep(0)


def proven_prefix(
    session: SftpSession, hashing: str, state: PartialState, *, probe_s: float, deadline: float | None = None
) -> Keep | PartialState:
    """How much of ``state.partial`` to keep (:data:`RESTART`: none), or — the read-back not
    finished by ``deadline`` — the state to checkpoint, with its :class:`Proof` so far.

    TransientError when the file is still growing (another delivery is writing it).
    """
    now = attrs_of(session, state.partial, follow_links=False)
    if not is_file(now) or int(now.st_size or 0) < state.size:
        log.info("partial file gone or shorter than recorded; restarting", remote_path=state.partial)
        return RESTART
    seen = (int(now.st_size or 0), int(now.st_mtime or 0))
    proof = state.proof if state.proof and seen == (state.proof.size, state.proof.mtime) else None
    if state.proof and proof is None:
        log.info("partial file changed since its proof began; proving from byte 0", remote_path=state.partial)
    if proof is None and seen != (state.size, state.mtime):
        time.sleep(probe_s)  # touched since the pause: make sure nobody is writing it now
        again = attrs_of(session, state.partial, follow_links=False)
        if again is None or (int(again.st_size or 0), int(again.st_mtime or 0)) != seen:
            raise TransientError(f"sftp:{session.partner}: another delivery is writing {state.partial}; retrying later")
    if seen[0] > state.size:  # written past the last checkpoint by an invocation that died
        seen = _truncate(session, state.partial, state.size)
    whole = Keep(state.size, state.sha1, state.blocks)
    if proof is None and hashing != "none":
        if remote_sha1(session, hashing, [state.partial], state.size)[state.partial] == state.sha1:
            log.info("resuming partial file", remote_path=state.partial, offset=state.size, proven_by="server hash")
            return whole
        log.warning("partial file's server hash differs from what was sent", remote_path=state.partial)
    if not state.blocks:
        log.warning("no block hashes to prove the partial file by; restarting", remote_path=state.partial)
        return RESTART
    start = proof.offset if proof else 0
    reached, bad = _read_back(session, state, start, deadline)
    if bad is not None:
        log.warning("partial file differs from what was sent; cutting it there", remote_path=state.partial, offset=bad)
        if bad == 0:
            return RESTART
        _truncate(session, state.partial, bad)
        return Keep(bad, None, state.blocks[: bad // BLOCK_BYTES])
    if reached < state.size:
        log.info("out of time proving the partial file", remote_path=state.partial, proven=reached, size=state.size)
        return dataclasses.replace(state, proof=Proof(reached, *seen))
    log.info(
        "resuming partial file", remote_path=state.partial, offset=state.size, proven_by="read back", proof_from=start
    )
    return whole


def _read_back(session: SftpSession, state: PartialState, start: int, deadline: float | None) -> tuple[int, int | None]:
    """Compare the partial's blocks from ``start`` with ``state.blocks`` until done or past
    ``deadline`` (after at least :data:`PROOF_MIN_BYTES`). Returns (bytes proven, the offset of
    the first block that differs or None)."""
    offset = start
    reader = PipelinedReader(session, state.partial, start=start)
    try:
        while offset < state.size:
            want = min(BLOCK_BYTES, state.size - offset)
            block = bytearray()
            while len(block) < want and (piece := reader.read(want - len(block))):
                block += piece
            if block_checksum(block) != state.blocks[offset // BLOCK_BYTES]:
                return offset, offset
            offset += want
            if deadline is not None and offset - start >= PROOF_MIN_BYTES and time.monotonic() > deadline:
                break
    finally:
        reader.close()
    return offset, None


def _truncate(session: SftpSession, path: str, size: int) -> tuple[int, int]:
    """Cut ``path`` to ``size`` bytes; its (size, mtime) after."""
    with sftp_errors(session.partner, "truncating", path):
        session.sftp.truncate(path, size)
    after = attrs_of(session, path, follow_links=False)
    return (int(after.st_size or 0), int(after.st_mtime or 0)) if after is not None else (size, -1)
