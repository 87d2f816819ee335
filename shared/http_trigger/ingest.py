"""``POST /ingest``: start a SQLite → BigQuery sync over HTTP, as an app's sync admin endpoints
did (a manual run of every table, of some tables, a full one).

The body is an ingest request exactly as on ``ingest-requests`` (``{"tables": [...], "full":
true}``, both optional; parsed by :class:`~shared.ingest.request.IngestRequest`, same messages);
a table the config's ``ingest.include``/``exclude`` does not select is refused before anything
is published. The answer names the run (``run_id``, unless the body gives one) whose results the
ingest function reports (``GET /runs/<run_id>``, ``offsite status``). Per-table sync state is
``offsite ingest status`` (it reads the state table in BigQuery, which this function may not).
"""

from __future__ import annotations

from shared.config import Config
from shared.http_trigger.messages import BadRequest, HttpRequest, HttpResponse, error
from shared.messages import parse_json_object


def start_ingest(request: HttpRequest, config: Config) -> HttpResponse:
    """Publish the ingest request on ingest-requests (202), or say why not (400, 404)."""
    from shared.gcp import pubsub
    from shared.ingest.request import IngestRequest
    from shared.stages.fan_out import new_run_id
    from shared.topology import INGEST_REQUESTS

    settings = config.ingest
    if settings is None:
        return error(404, "ingest: not configured (the config has no 'ingest:' section; see docs/ingest.md)")
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
