"""``POST /ingest`` and ``GET /ingest``: start a SQLite → BigQuery sync over HTTP and read its
state, as an app's sync admin endpoints did (a manual run of every table, of some tables, a full
one; the sync status and schedule; the tables configured for sync).

The body is an ingest request exactly as on ``ingest-requests`` (``{"tables": [...], "full":
true}``, both optional; parsed by :class:`~shared.ingest.request.IngestRequest`, same messages);
a table the config's ``ingest.include``/``exclude`` does not select is refused before anything
is published. The answer names the run (``run_id``, unless the body gives one) whose results the
ingest function reports (``GET /runs/<run_id>``, ``offsite status``).

``GET /ingest`` answers what ``offsite ingest status`` shows, per table of the sync state
(``_offsite_sync_state``, read as a plain table: no query job), with the config's selection
(``include``/``exclude``, and which known tables it selects) and the ingest's Cloud Scheduler
jobs (:mod:`shared.schedule`) with their next run.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from shared.config import Config
from shared.config.ingest import IngestSettings
from shared.http_trigger.messages import BadRequest, HttpRequest, HttpResponse, error
from shared.message_fields import parse_json_object

if TYPE_CHECKING:
    from shared.ingest.state import TableState

NOT_CONFIGURED = "ingest: not configured (the config has no 'ingest:' section; see docs/ingest.md)"


def start_ingest(request: HttpRequest, config: Config) -> HttpResponse:
    """Publish the ingest request on ingest-requests (202), or say why not (400, 404)."""
    from shared.gcp import pubsub
    from shared.ingest.request import IngestRequest
    from shared.stages.fan_out import new_run_id
    from shared.topology import INGEST_REQUESTS

    settings = config.ingest
    if settings is None:
        return error(404, NOT_CONFIGURED)
    obj = parse_json_object(request.body, IngestRequest.KIND) if request.body.strip() else {}
    if obj.get("run_id") is None:  # ours, so the answer can name the run
        obj["run_id"] = new_run_id()
    ingest = IngestRequest.from_obj(obj)
    unselected = [t for t in ingest.tables or () if not settings.selects(t)]
    if unselected:
        raise BadRequest(
            f"{IngestRequest.KIND}.tables: {unselected[0]!r} is not a table the config syncs (ingest.include "
            f"{list(settings.include)}, exclude {list(settings.exclude)})"
        )
    message_id = pubsub.publish(INGEST_REQUESTS, ingest, origin="http-trigger")
    return HttpResponse(
        202, {"run_id": ingest.run_id, "message_id": message_id, "topic": INGEST_REQUESTS, "request": ingest.to_dict()}
    )


def ingest_status(config: Config) -> HttpResponse:
    """The ingest's per-table sync state, selection and schedule (200), or 404 without ``ingest:``."""
    from shared.schedule import scheduled_jobs
    from shared.topology import INGEST_REQUESTS

    settings = config.ingest
    if settings is None:
        return error(404, NOT_CONFIGURED)
    now = dt.datetime.now(dt.UTC)
    states = read_states(config.project, settings.dataset)
    known = sorted({s.table for s in states} | set(settings.tables))
    jobs = [job.as_dict(now) for job in scheduled_jobs(config) if job.topic == INGEST_REQUESTS]
    return HttpResponse(
        200,
        {
            "project": config.project,
            "dataset": settings.dataset,
            "tables": [{**s.status_row(now), "selected": settings.selects(s.table)} for s in states],
            "syncing": [s.table for s in states if s.lease_owner and s.lease_until and s.lease_until > now],
            "selection": _selection(settings, known),
            "schedule": jobs,
            "checked_at": now.isoformat(timespec="seconds"),
        },
    )


def read_states(project: str, dataset: str) -> list[TableState]:
    """Every row of the dataset's sync state, by table (:meth:`~shared.ingest.state.SyncState.all`:
    a plain table read, so the trigger needs no query job); BigQuery unreachable → TransientError (503)."""
    from shared.gcp import clients
    from shared.ingest.state import SyncState

    return SyncState(clients.bigquery_client(), project, dataset).all()


def _selection(settings: IngestSettings, known: list[str]) -> dict[str, Any]:
    """The config's table selection: its globs, and which of the tables known here (synced before,
    or with a ``tables:`` entry) it selects: what ``POST /ingest`` without ``tables`` syncs, besides
    tables of the SQLite file not synced yet (discovered when the sync opens the file)."""
    return {
        "include": list(settings.include),
        "exclude": list(settings.exclude),
        "tables": [t for t in known if settings.selects(t)],
    }
