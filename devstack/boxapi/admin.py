"""The admin API under ``/_admin`` (not Box): faults, request log, reset, auth setup.

- ``GET/POST/DELETE /_admin/faults`` and ``DELETE /_admin/faults/{id}``
- ``GET/DELETE /_admin/requests`` (``?operation=`` filters; ``rate_limited``: calls refused by the rate limits)
- ``POST /_admin/reset`` (``{"data": false}`` keeps files and folders)
- ``POST /_admin/tokens/expire`` (``{"token": ..., "include_developer": true}``)
- ``POST /_admin/apps`` (``client_id``, ``client_secret``, ``enterprise_id``, ``public_keys``)
- ``POST /_admin/authorization_codes`` (``client_id``, optional ``user_id``)
- ``GET/POST /_admin/config`` (``token_ttl_s``, ``session_ttl_s``, ``commit_wait_s``, ``download_ready_s``,
  ``max_upload_size``, ``calls_per_minute``, ``uploads_per_minute``: the per-user rate limits, null for none)
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .app import State
from .config import AppCredentials
from .errors import BoxError, OAuthError, bad_request, json_response
from .faults import Fault


def _optional_rate(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


_TUNABLE = {
    "token_ttl_s": float,
    "session_ttl_s": float,
    "commit_wait_s": float,
    "download_ready_s": float,
    "max_upload_size": int,
    "calls_per_minute": _optional_rate,
    "uploads_per_minute": _optional_rate,
}


async def _json(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise bad_request(f"admin request body is not JSON: {exc}") from exc


def _config_json(state: State) -> dict[str, Any]:
    return {name: getattr(state.config, name) for name in _TUNABLE}


async def dispatch(request: Request, state: State) -> Response:
    path, method = request.url.path.removeprefix("/_admin"), request.method
    if path.startswith("/faults/") and method == "DELETE":
        found = state.faults.remove(path.removeprefix("/faults/"))
        return Response(status_code=204 if found else 404)
    handler = _ROUTES.get((method, path))
    if handler is None:
        raise BoxError(404, "not_found", f"no admin endpoint {method} {request.url.path}")
    return await handler(request, state)


async def _list_faults(request: Request, state: State) -> Response:
    return json_response({"faults": [f.to_json() for f in state.faults.list()]})


async def _add_faults(request: Request, state: State) -> Response:
    body = await _json(request)
    specs = body.get("faults", [body]) if isinstance(body, dict) else body
    if not isinstance(specs, list):
        raise bad_request('expected a fault object, a list, or {"faults": [...]}')
    faults = [Fault.from_json(spec) for spec in specs]
    for fault in faults:
        state.faults.add(fault)
    return json_response({"faults": [f.to_json() for f in faults]}, 201)


async def _clear_faults(request: Request, state: State) -> Response:
    state.faults.clear()
    return Response(status_code=204)


async def _list_requests(request: Request, state: State) -> Response:
    answer = state.log.to_json(request.query_params.get("operation"))
    answer["rate_limited"] = state.limiter.refused if state.limiter is not None else 0
    return json_response(answer)


async def _clear_requests(request: Request, state: State) -> Response:
    state.log.clear()
    return Response(status_code=204)


async def _reset(request: Request, state: State) -> Response:
    body = await _json(request)
    state.faults.clear()
    state.log.clear()
    if state.limiter is not None:
        state.limiter.reset()
    if body.get("data", True):
        for task in state.assemblies.values():
            task.cancel()
        state.assemblies.clear()
        state.db.wipe_content()
        state.blobs.wipe()
        state.items.ensure_root(state.users.developer()["id"])
    return Response(status_code=204)


async def _expire_tokens(request: Request, state: State) -> Response:
    body = await _json(request)
    count = state.tokens.expire(body.get("token"), include_developer=body.get("include_developer", True))
    return json_response({"expired": count})


async def _register_app(request: Request, state: State) -> Response:
    body = await _json(request)
    try:
        app = AppCredentials(
            client_id=str(body["client_id"]),
            client_secret=str(body["client_secret"]),
            enterprise_id=str(body.get("enterprise_id", state.config.enterprise_id)),
            public_keys={str(k): str(v) for k, v in body.get("public_keys", {}).items()},
        )
    except (KeyError, AttributeError) as exc:
        raise bad_request(f"apps need client_id, client_secret and optional public_keys {{kid: pem}}: {exc}") from exc
    state.tokens.register_app(app)
    return json_response({"client_id": app.client_id, "enterprise_id": app.enterprise_id}, 201)


async def _new_authorization_code(request: Request, state: State) -> Response:
    body = await _json(request)
    try:
        code = state.tokens.new_authorization_code(str(body.get("client_id", "")), body.get("user_id"))
    except OAuthError as exc:
        raise bad_request(exc.description) from exc
    return json_response({"code": code}, 201)


async def _show_config(request: Request, state: State) -> Response:
    return json_response(_config_json(state))


async def _set_config(request: Request, state: State) -> Response:
    body = await _json(request)
    for name, value in body.items():
        if name not in _TUNABLE:
            raise bad_request(f"unknown setting {name!r}; known: {', '.join(_TUNABLE)}")
        setattr(state.config, name, _TUNABLE[name](value))
    return json_response(_config_json(state))


_ROUTES: dict[tuple[str, str], Callable[[Request, State], Awaitable[Response]]] = {
    ("GET", "/faults"): _list_faults,
    ("POST", "/faults"): _add_faults,
    ("DELETE", "/faults"): _clear_faults,
    ("GET", "/requests"): _list_requests,
    ("DELETE", "/requests"): _clear_requests,
    ("POST", "/reset"): _reset,
    ("POST", "/tokens/expire"): _expire_tokens,
    ("POST", "/apps"): _register_app,
    ("POST", "/authorization_codes"): _new_authorization_code,
    ("GET", "/config"): _show_config,
    ("POST", "/config"): _set_config,
}
