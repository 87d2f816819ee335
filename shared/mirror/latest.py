"""A mirrored bucket's *latest reconcile* at each destination, kept in the state bucket
(``mirror/{bucket}/{destination}/latest-reconcile.json``) when the entry has ``retention``:
versions are pruned only while it is ``in_sync`` (shared/retention/versions.py); and the name of
what a reconcile still reading back has read so far (``readback.json`` beside it)."""

from __future__ import annotations

import datetime as dt
import json

from shared.config import Config
from shared.config.buckets import BucketMirror
from shared.gcp import gcs
from shared.ids import DestinationId, Status
from shared.messages import VerifyResult


def name(mirror: BucketMirror, destination: DestinationId | str) -> str:
    """The state bucket object holding the bucket's latest reconcile result at ``destination``."""
    return f"mirror/{mirror.name}/{destination}/latest-reconcile.json"


def readback_name(mirror: BucketMirror, destination: DestinationId | str) -> str:
    """The state bucket object keeping what a reconcile at ``destination`` read back so far
    (shared/verify/readback.py)."""
    return f"mirror/{mirror.name}/{destination}/readback.json"


def record(config: Config, mirror: BucketMirror, destination: DestinationId, result: VerifyResult) -> None:
    """Keep ``result`` as the bucket's latest reconcile at ``destination`` (only with ``retention``)."""
    if mirror.retention is None:
        return
    body = {"status": result.status, "finished_at": result.finished_at or dt.datetime.now(dt.UTC).isoformat()}
    gcs.write(
        config.state_bucket_name,
        name(mirror, destination),
        json.dumps(body, sort_keys=True).encode(),
        "application/json",
    )


def in_sync(config: Config, mirror: BucketMirror, destination: DestinationId | str) -> bool:
    """Is the bucket's latest reconcile at ``destination`` in_sync?"""
    data = gcs.read_bytes(config.state_bucket_name, name(mirror, destination))
    return data is not None and json.loads(data).get("status") == Status.IN_SYNC
