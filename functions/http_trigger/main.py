"""Cloud Function http_trigger (HTTP): bq-to-box-sync's POST /sync API, plus GET /runs/<id>,
POST /verify[/<id>], POST /ingest, GET /ingest, /collect[/<job>] and /restore-drill[/<dataset>]
(shared/http_trigger/api.py)."""

import flask
import functions_framework

from shared import runtime
from shared.http_trigger.api import handle
from shared.http_trigger.messages import HttpRequest


@functions_framework.http
def http_trigger(request: flask.Request) -> flask.Response:
    response = handle(
        HttpRequest(
            method=request.method,
            path=request.path,
            query=request.args.to_dict(),
            # Cloud Run checks X-Serverless-Authorization instead of Authorization when both are sent.
            authorization=request.headers.get("X-Serverless-Authorization") or request.headers.get("Authorization"),
            body=request.get_data(cache=False),
            idempotency_key=request.headers.get("Idempotency-Key"),
        ),
        runtime.config(),
    )
    return flask.Response(
        flask.json.dumps(response.body), response.status, response.headers, mimetype="application/json"
    )
