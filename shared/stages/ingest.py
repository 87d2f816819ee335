"""The ingest_sqlite function: sync a SQLite snapshot in GCS into BigQuery (called by functions/ingest_sqlite).

Triggers:
- ``ingest-requests`` (Pub/Sub; Cloud Scheduler's incremental and full jobs, or by hand):
  :class:`~shared.ingest.request.IngestRequest` → sync the snapshot at ``ingest.snapshot_uri``;
- ``ingest-snapshots`` (Pub/Sub; the snapshot bucket's OBJECT_FINALIZE notification): the
  object at ``ingest.snapshot_uri`` was replaced → incremental sync of that generation. Other
  objects and event types are ignored.

The snapshot is downloaded to /tmp (a function's memory-backed disk: size memory for it) and
synced by the same engine ``offsite ingest run`` uses. Each table's outcome is published on
verify-results. A run where any table failed transiently raises TransientError so Pub/Sub
redelivers (tables already applied are idempotent on the rerun).
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import Any

from shared import log
from shared.config import Config
from shared.config.ingest import IngestSettings
from shared.errors import ConfigError, TransientError
from shared.events import parse_pubsub
from shared.gcp import clients
from shared.ingest import snapshot
from shared.ingest.engine import IngestRun, TableOutcome, sync
from shared.ingest.report import publish
from shared.ingest.request import IngestRequest
from shared.stages.runner import dispatch
from shared.topology import INGEST_REQUESTS, INGEST_SNAPSHOTS

logger = log.get_logger(__name__)


def _settings(config: Config) -> IngestSettings:
    if config.ingest is None or not config.ingest.snapshot_uri:
        raise ConfigError("ingest.snapshot_uri: not set; the ingest function syncs the snapshot found there")
    return config.ingest


def run_snapshot(
    config: Config, *, tables: list[str] | None, full: bool, generation: int | None = None, run_id: str | None = None
) -> list[TableOutcome]:
    """Download the snapshot, sync it, publish each table's result; TransientError if any table may succeed later."""
    settings = _settings(config)
    assert settings.snapshot_uri is not None
    bucket, name = snapshot.split_uri(settings.snapshot_uri)
    attempt = uuid.uuid4().hex[:16]  # the lease owner and staging suffix: unique per attempt, even on redelivery
    run_id = run_id or attempt
    with tempfile.TemporaryDirectory(prefix="offsite-ingest-") as work:
        local = snapshot.fetch(clients.storage_client(), bucket, name, Path(work) / "snapshot.sqlite", generation)
        local_settings = settings.model_copy(update={"sqlite_path": str(local)})
        job = IngestRun(local_settings, clients.bigquery_client(), config.project, attempt)
        outcomes = sync(job, tables=tables, full=full)
    publish(outcomes, project=config.project, dataset=settings.dataset, run_id=run_id, config=config)
    transient = [o.table for o in outcomes if o.transient]
    if transient:
        raise TransientError(f"ingest: tables {', '.join(transient)} failed transiently; redelivery retries them")
    return outcomes


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
