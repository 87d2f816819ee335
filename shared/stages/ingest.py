"""The ingest_sqlite function: sync a SQLite snapshot in GCS into BigQuery (called by functions/ingest_sqlite).

Triggers:
- ``ingest-requests`` (Pub/Sub; Cloud Scheduler's incremental and full jobs, or by hand):
  :class:`~shared.ingest.request.IngestRequest` → sync the snapshot at ``ingest.snapshot_uri``;
- ``ingest-snapshots`` (Pub/Sub; the snapshot bucket's OBJECT_FINALIZE notification): the
  object at ``ingest.snapshot_uri`` was replaced → incremental sync of that generation. Other
  objects and event types are ignored.

The snapshot is downloaded to /tmp (a function's memory-backed disk: one larger than half the
function's memory is refused before the download) and synced by the same engine ``offsite
ingest run`` uses. Tables are started while the longest one so far would still end 60 s before
the 540 s timeout; the others go back on ``ingest-requests`` as one request (same run id), which
a new invocation takes up. Each table's outcome is published on verify-results. A run where any table failed transiently raises TransientError so Pub/Sub
redelivers (tables already applied are idempotent on the rerun).
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from shared import log, retry, topology
from shared.config import Config
from shared.config.ingest import IngestSettings
from shared.errors import ConfigError, PermanentError, TransientError
from shared.events import parse_pubsub
from shared.gcp import clients, gcs, pubsub
from shared.ingest import snapshot
from shared.ingest.engine import IngestRun, TableOutcome, sync
from shared.ingest.plan import NotSqlite
from shared.ingest.report import publish
from shared.ingest.request import IngestRequest
from shared.stages.runner import RETRY_MARGIN_S, dispatch
from shared.topology import INGEST_REQUESTS, INGEST_SNAPSHOTS

logger = log.get_logger(__name__)
FUNCTION = topology.function("ingest_sqlite")
MAX_SNAPSHOT_BYTES = FUNCTION.memory_mb * 1024 * 1024 // 2


def _settings(config: Config) -> IngestSettings:
    if config.ingest is None or not config.ingest.snapshot_uri:
        raise ConfigError("ingest.snapshot_uri: not set; the ingest function syncs the snapshot found there")
    return config.ingest


def run_snapshot(
    config: Config,
    *,
    tables: list[str] | None,
    full: bool,
    generation: int | None = None,
    run_id: str | None = None,
    budget_s: float | None = None,
    max_snapshot_bytes: int = MAX_SNAPSHOT_BYTES,
) -> list[TableOutcome]:
    """Download the snapshot, sync it, publish each table's result; TransientError if any table may succeed later.

    Tables start while the longest so far would still end by the deadline: ``budget_s`` from now,
    by default the invocation's (:func:`shared.retry.invocation_ends`, a minute before the timeout)."""
    settings = _settings(config)
    assert settings.snapshot_uri is not None
    bucket, name = snapshot.split_uri(settings.snapshot_uri)
    attempt = uuid.uuid4().hex[:16]  # the lease owner and staging suffix: unique per attempt, even on redelivery
    run_id = run_id or attempt
    deadline = time.monotonic() + budget_s if budget_s is not None else _invocation_deadline()
    storage = clients.storage_client()
    # the generation whose size was checked is the one downloaded, even if the object is replaced in between
    generation = _check_size(storage, bucket, name, generation, max_snapshot_bytes)
    with tempfile.TemporaryDirectory(prefix="offsite-ingest-") as work:
        local = snapshot.fetch(storage, bucket, name, Path(work) / "snapshot.sqlite", generation)
        local_settings = settings.model_copy(update={"sqlite_path": str(local)})
        job = IngestRun(local_settings, clients.bigquery_client(), config.project, attempt)
        try:
            outcomes = sync(job, tables=tables, full=full, deadline=deadline)
        except NotSqlite as exc:  # the app's upload, not this copy: another delivery reads the same bytes
            raise PermanentError(
                f"ingest.snapshot_uri: gs://{bucket}/{name} (generation {generation}) is not a SQLite database"
                f" ({exc.detail}); upload a consistent copy with `offsite ingest push`"
            ) from None
    deferred = [o.table for o in outcomes if o.status == "deferred"]
    done = [o for o in outcomes if o.status != "deferred"]
    publish(done, project=config.project, dataset=settings.dataset, run_id=run_id, config=config)
    if deferred:
        # the next invocation syncs the snapshot of then (a newer one is as good: the sync is incremental)
        pubsub.publish(INGEST_REQUESTS, IngestRequest(tables=tuple(deferred), full=full, run_id=run_id))
        logger.info("out of time; the other tables continue in a new invocation", tables=deferred)
    transient = [o.table for o in outcomes if o.transient]
    if transient:
        raise TransientError(f"ingest: tables {', '.join(transient)} failed transiently; redelivery retries them")
    return outcomes


def _invocation_deadline() -> float:
    """The runner's: RETRY_MARGIN_S before the function's timeout (now + that, outside the runner)."""
    ends = retry.invocation_ends()
    return ends if ends is not None else time.monotonic() + FUNCTION.timeout_s - RETRY_MARGIN_S


def _check_size(storage: Any, bucket: str, name: str, generation: int | None, limit: int) -> int | None:
    """A snapshot the function's /tmp (memory) cannot hold beside the sync is refused before the
    download: the instance would run out of memory and every redelivery with it. Returns the
    generation checked."""
    with gcs.mapped_errors(f"reading {gcs.uri(bucket, name)}"):
        blob = storage.bucket(bucket).get_blob(name, generation=generation, retry=gcs.LIBRARY_RETRY)
    if blob is None:
        raise PermanentError(
            f"ingest.snapshot_uri: gs://{bucket}/{name} does not exist: the app's host uploads it with"
            " `offsite ingest push` (docs/ingest.md), or sync there with `offsite ingest run`"
        )
    if blob.size is not None and blob.size > limit:
        raise PermanentError(
            f"ingest.snapshot_uri: gs://{bucket}/{name} is {blob.size:,} bytes; ingest_sqlite holds it in its "
            f"memory-backed /tmp and takes at most {limit:,} (half its {FUNCTION.memory_mb} MB): "
            "give the function more memory (shared/topology.py, infra/topology.tf) or sync it with `offsite ingest run`"
        )
    return blob.generation if blob.generation is not None else generation


def on_request(event: Any, config: Config) -> None:
    message = parse_pubsub(event)
    request = IngestRequest.from_json(message.data)
    with log.bind(run_id=request.run_id):
        run_snapshot(
            config, tables=list(request.tables) if request.tables else None, full=request.full, run_id=request.run_id
        )


def on_snapshot(event: Any, config: Config) -> None:
    """A GCS notification (attributes eventType, bucketId, objectId, objectGeneration)."""
    message = parse_pubsub(event)
    attrs = message.attributes
    settings = _settings(config)
    assert settings.snapshot_uri is not None
    bucket, name = snapshot.split_uri(settings.snapshot_uri)
    if attrs.get("eventType") != "OBJECT_FINALIZE" or (attrs.get("bucketId"), attrs.get("objectId")) != (bucket, name):
        logger.info("not the configured snapshot; ignored", object=f"{attrs.get('bucketId')}/{attrs.get('objectId')}")
        return
    generation = int(attrs["objectGeneration"]) if attrs.get("objectGeneration", "").isdigit() else None
    run_snapshot(config, tables=None, full=False, generation=generation)


handle = dispatch({INGEST_REQUESTS: on_request, INGEST_SNAPSHOTS: on_snapshot})
