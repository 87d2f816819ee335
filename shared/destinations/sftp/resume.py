"""Continuing a partial file left by an earlier invocation, only where its bytes are proven.

A delivery that runs out of time stops at a chunk boundary and records
:class:`PartialState`: the partial file, how many bytes it holds, and the SHA-1 of those bytes
as they were read from the source. The next invocation keeps that prefix only if it is proven
equal — by the server's hash of the partial (``hashing`` on, and the file holds exactly those
bytes) or else by reading the prefix back and hashing it (on slow links, turn server hashing
on: a read-back costs the prefix's size in downloads) — after checking that no other writer is
growing the file (skipped when its size and mtime are still the ones recorded at the pause).
Anything unproven is restarted from byte 0: nothing is ever appended to bytes we cannot vouch for.
"""

from __future__ import annotations

import stat as statmod
import time
from dataclasses import dataclass
from typing import Any

from shared.destinations.sftp.connect import SftpSession, sftp_errors
from shared.destinations.sftp.hashing import remote_sha1
from shared.destinations.sftp.stream import read_sha1
from shared.errors import TransientError
from shared.log import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class PartialState:
    """What an earlier invocation left: ``size`` bytes in ``partial`` whose SHA-1 is ``sha1``,
    and the file's mtime right after (an untouched file still has it)."""

    partial: str
    size: int
    sha1: str
    mtime: int = -1

    def to_dict(self) -> dict[str, Any]:
        return {"partial": self.partial, "size": self.size, "sha1": self.sha1, "mtime": self.mtime}

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None, partial: str) -> PartialState | None:
        """The state if it is about ``partial`` and well-formed; None otherwise (restart)."""
        try:
            state = (
                cls(str(raw["partial"]), int(raw["size"]), str(raw["sha1"]), int(raw.get("mtime", -1))) if raw else None
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        return state if state is not None and state.partial == partial and state.size > 0 else None


def proven_prefix(session: SftpSession, hashing: str, state: PartialState, *, probe_s: float) -> int:
    """How many bytes of ``state.partial`` to keep: ``state.size`` when proven, else 0.

    TransientError when the file is still growing (another delivery is writing it).
    """
    before = _lstat(session, state.partial)
    if before is None or not statmod.S_ISREG(before.st_mode or 0) or int(before.st_size or 0) < state.size:
        log.info("partial file gone or shorter than recorded; restarting", remote_path=state.partial)
        return 0
    after = before
    if (int(before.st_size or 0), int(before.st_mtime or 0)) != (state.size, state.mtime):
        time.sleep(probe_s)  # touched since the pause: make sure nobody is writing it now
        after = _lstat(session, state.partial)
        if after is None or (after.st_size, after.st_mtime) != (before.st_size, before.st_mtime):
            raise TransientError(f"sftp:{session.partner}: another delivery is writing {state.partial}; retrying later")
    size = int(after.st_size or 0)
    if size == state.size and hashing != "none":
        served = remote_sha1(session, hashing, [state.partial], size)[state.partial]
        proven, how = served == state.sha1, "server hash"
    else:
        proven, how = read_sha1(session, state.partial, state.size) == state.sha1, "read back"
    if not proven:
        log.warning("partial file's prefix differs from what was sent; restarting", remote_path=state.partial)
        return 0
    if size > state.size:  # written past the last checkpoint by an invocation that died
        with sftp_errors(session.partner, "truncating", state.partial):
            session.sftp.truncate(state.partial, state.size)
    log.info("resuming partial file", remote_path=state.partial, offset=state.size, proven_by=how)
    return state.size


def _lstat(session: SftpSession, path: str) -> Any:
    with sftp_errors(session.partner, "checking", path):
        try:
            return session.sftp.lstat(path)
        except FileNotFoundError:
            return None
