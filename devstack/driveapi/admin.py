"""The admin API (``/_admin/...``; not Drive's): faults, request counts, OAuth clients,
refresh tokens, service accounts, token expiry and run-time settings, for tests and the stack."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .auth import OAuthError

if TYPE_CHECKING:
    from .app import State


async def admin(request: Request, state: State) -> Response:
    path, method = request.url.path.removeprefix("/_admin"), request.method
    raw = await request.body()
    body: dict[str, Any] = json.loads(raw) if raw.strip() else {}
    tokens = state.tokens
    try:
        if path == "/faults":
            if method == "POST":
                return JSONResponse({"faults": [vars(state.faults.add_spec(body))]})
            if method == "DELETE":
                state.faults.faults.clear()
            return JSONResponse({"faults": state.faults.describe()})
        if path == "/requests":
            if method == "DELETE":
                state.faults.counts.clear()
                state.statuses.clear()
            return JSONResponse({"counts": dict(state.faults.counts), "statuses": dict(state.statuses)})
        if path == "/clients" and method == "POST":
            tokens.clients[body["client_id"]] = body["client_secret"]
            return JSONResponse({"client_id": body["client_id"]})
        if path == "/refresh_tokens" and method == "POST":
            return JSONResponse({"refresh_token": tokens.new_refresh_token(body["client_id"], body["principal"])})
        if path == "/revoke" and method == "POST":
            return JSONResponse({"revoked": tokens.revoke(body["token"])})
        if path == "/service_accounts" and method == "POST":
            tokens.service_accounts[body["email"]] = body["public_key"]
            return JSONResponse({"email": body["email"]})
        if path == "/static_tokens" and method == "POST":
            tokens.static[body["token"]] = body["principal"]
            return JSONResponse({"token": body["token"]})
        if path == "/tokens/expire" and method == "POST":
            return JSONResponse({"expired": tokens.expire_all()})
        if path == "/config" and method == "POST":
            if "token_ttl_s" in body:
                tokens.token_ttl_s = float(body["token_ttl_s"])
            return JSONResponse({"token_ttl_s": tokens.token_ttl_s})
        if path == "/sessions":
            return JSONResponse(
                {
                    "sessions": [
                        {"id": s.id, "received": s.received, "total": s.total, "done": s.done_id is not None}
                        for s in state.uploads.sessions.values()
                    ]
                }
            )
    except (KeyError, TypeError, ValueError, OAuthError) as exc:
        return JSONResponse({"error": f"{method} /_admin{path}: {exc!r}"}, status_code=400)
    return JSONResponse({"error": f"no admin call {method} /_admin{path}"}, status_code=404)
