"""A collected file's copy that outlives one invocation: budgeted, checkpointed, continued.

As a delivery does (:mod:`shared.delivery.checkpoint`), collect_copy works at most
``delivery.budget_s`` per invocation on a resumable destination (``Abilities.resumable``: Box
upload sessions, SFTP partial files, Drive resumable sessions): ``put_resumable`` runs to the
invocation's deadline; a copy not finished by then is checkpointed in the state bucket and the
file's ``collect-files`` message is published again (the continuation), so the next invocation
resumes where it stopped. The claim on the file version stays held in between (the continuation
has the same run id, its owner).

- checkpoint: ``checkpoints/collect/{job}/{destination}/{h}.json`` (``h`` a hash of the remote
  path), a :class:`~shared.delivery.checkpoint.Checkpoint` whose ``object`` is the partner file
  (``partner:path``), ``generation`` its mtime and ``size`` its size. It is used only for that
  same version: a source whose size or mtime changed drops it and the copy starts over.
- the source is the partner's file, opened again from its first byte: the destination hashes the
  bytes it already holds (its proof of the prefix, and the whole-file SHA-1) and sends only the
  rest.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass

from shared import log
from shared.collect.messages import CollectFile
from shared.collect.selection import FileIdentity
from shared.delivery import checkpoint
from shared.delivery.checkpoint import Checkpoint
from shared.destinations.base import ByteStream, DeliveryLedger, Progress, PutResult, Resumable
from shared.gcp import gcs, pubsub
from shared.topology import COLLECT_FILES

logger = log.get_logger(__name__)


@dataclass(frozen=True)
class Budget:
    """Until when one invocation copies (``time.monotonic()``), and where its checkpoints live."""

    deadline: float
    state_bucket: str
    job: str

    @classmethod
    def starting_now(cls, budget_s: float, state_bucket: str, job: str) -> Budget:
        return cls(time.monotonic() + budget_s, state_bucket, job)


class Paused(Exception):
    """The budget ran out mid-copy: the checkpoint is saved; continue in a new invocation."""

    def __init__(self, saved: Checkpoint) -> None:
        super().__init__(f"paused at {saved.bytes_done} bytes after {saved.invocations} invocation(s)")
        self.saved = saved


def checkpoint_name(job: str, destination: str, remote_path: str) -> str:
    key = hashlib.sha256(remote_path.encode()).hexdigest()[:32]
    return f"{checkpoint.PREFIX}collect/{job}/{destination.replace(':', '/')}/{key}.json"


def _of(found: Checkpoint, identity: FileIdentity) -> bool:
    """The checkpoint is of this file version (same partner file, size and mtime)."""
    return (found.object, found.generation, found.size) == (
        f"{identity.partner}:{identity.path}",
        identity.mtime,
        identity.size,
    )


def put_within(
    dest: Resumable,
    destination: str,
    path: str,
    source: ByteStream,
    identity: FileIdentity,
    ledger: DeliveryLedger | None,
    budget: Budget,
    labels: Mapping[str, str] | None = None,
) -> PutResult:
    """``put_resumable`` from this version's checkpoint until the budget's deadline. Raises
    :class:`Paused` once the checkpoint is saved when the copy is not complete by then; forgets
    the checkpoint when it is. ``labels``: the file's, at a :class:`Labelled` destination."""
    name = checkpoint_name(budget.job, destination, path)
    before = checkpoint.read(budget.state_bucket, name)
    if before is not None and (not _of(before, identity) or before.remote_path != path):
        logger.warning(
            "the source changed since the copy was checkpointed; copying it from the start",
            checkpoint_size=before.size,
            checkpoint_mtime=before.generation,
        )
        gcs.delete(budget.state_bucket, name)
        before = None
    outcome = dest.put_resumable(
        path,
        source,
        identity.size,
        ledger=ledger,
        resume=before.state if before else None,
        deadline=budget.deadline,
        labels=labels,
    )
    if isinstance(outcome, Progress):
        saved = checkpoint.advanced(
            before,
            outcome,
            destination=destination,
            object=f"{identity.partner}:{identity.path}",
            generation=identity.mtime,
            remote_path=path,
            size=identity.size,
        )
        checkpoint.write(budget.state_bucket, name, saved)
        checkpoint.log_paused(saved, identity.size)
        raise Paused(saved)
    if before is not None:
        logger.info("resumed copy complete", invocations=before.invocations + 1, bytes_sent=before.bytes_sent)
        gcs.delete(budget.state_bucket, name)
    return outcome


def forget(state_bucket: str, job: str, destinations: list[str], path: str, identity: FileIdentity) -> None:
    """Drop this version's checkpoints (the source changed or went away: nothing resumes them);
    another version's are left to it."""
    for destination in destinations:
        name = checkpoint_name(job, destination, path)
        found = checkpoint.read(state_bucket, name)
        if found is not None and _of(found, identity):
            gcs.delete(state_bucket, name)
            logger.info("checkpoint of the changed file dropped", destination=destination)


def publish_continuation(message: CollectFile) -> str:
    """The file's message again: the next invocation continues its copy (same run, same claim)."""
    return pubsub.publish(COLLECT_FILES, message, run_id=message.run_id, collect=message.collect, continuation="1")
