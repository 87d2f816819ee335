"""The ASGI application of the local Drive v3 server.

URL layout (google-api-python-client's ``client_options={"api_endpoint": BASE}``, or any client
whose root URL is BASE instead of ``https://www.googleapis.com``):

- ``/drive/v3/files[/ID]``, ``/drive/v3/drives[/ID]``         the API
- ``/upload/drive/v3/files[/ID]``                               uploads and resumable sessions
- ``/token``, ``/revoke``                                       OAuth (oauth2.googleapis.com)
- ``/health``, ``/_admin/...``                                  not Drive: readiness, test/admin API
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from devstack.connreset import reset_connection

from . import api
from .auth import OAuthError, RefreshToken, TokenService
from .faults import FaultBook
from .store import DriveApiError, Store
from .uploads import Uploads

log = logging.getLogger("devstack.driveapi")


@dataclass
class State:
    store: Store
    uploads: Uploads
    tokens: TokenService
    faults: FaultBook = field(default_factory=FaultBook)
    statuses: Counter[str] = field(default_factory=Counter)  # "operation status" -> count


def error_response(exc: DriveApiError) -> Response:
    body = {
        "error": {
            "code": exc.status,
            "message": exc.message,
            "errors": [{"message": exc.message, "domain": exc.domain, "reason": exc.reason}],
        }
    }
    headers = {"Retry-After": str(int(exc.retry_after))} if exc.retry_after is not None else None
    return JSONResponse(body, status_code=exc.status, headers=headers)


_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (m, re.compile(p), op)
    for m, p, op in [
        ("GET", r"/drive/v3/files", "files.list"),
        ("POST", r"/drive/v3/files", "files.create"),
        ("GET", r"/drive/v3/files/(?P<id>[^/]+)", "files.get"),
        ("PATCH", r"/drive/v3/files/(?P<id>[^/]+)", "files.update"),
        ("DELETE", r"/drive/v3/files/(?P<id>[^/]+)", "files.delete"),
        ("POST", r"/(?:resumable/)?upload/drive/v3/files", "upload.start"),
        ("PATCH", r"/(?:resumable/)?upload/drive/v3/files/(?P<id>[^/]+)", "upload.start"),
        ("PUT", r"/upload/drive/v3/files(?:/[^/]+)?", "upload.chunk"),
        ("DELETE", r"/upload/drive/v3/files(?:/[^/]+)?", "upload.cancel"),
        ("GET", r"/drive/v3/drives", "drives.list"),
        ("POST", r"/drive/v3/drives", "drives.create"),
        ("GET", r"/drive/v3/drives/(?P<id>[^/]+)", "drives.get"),
        ("POST", r"/token", "token"),
        ("POST", r"/revoke", "revoke"),
    ]
]


class DriveApp:
    """The ASGI callable uvicorn serves."""

    def __init__(self, data_dir: Path, token_ttl_s: float) -> None:
        store = Store(data_dir)
        self.state = State(store, Uploads(store), TokenService(token_ttl_s=token_ttl_s))

    def seed(self, seed: dict[str, Any]) -> None:
        """Register what ``seed`` lists: ``clients`` {id: secret}, ``refresh_tokens`` {token:
        {client_id, principal}}, ``service_accounts`` {email: public key PEM}, ``drives`` [{id, name}]."""
        tokens, store = self.state.tokens, self.state.store
        tokens.clients.update(seed.get("clients", {}))
        for token, held in seed.get("refresh_tokens", {}).items():
            tokens.refresh_tokens[token] = RefreshToken(held["client_id"], held["principal"])
        tokens.service_accounts.update(seed.get("service_accounts", {}))
        for drive in seed.get("drives", []):
            store.create_drive(drive["name"], drive["id"], drive_id=drive["id"])

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].replace("lifespan.", "")
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        path, method = scope["path"], scope["method"]
        if path == "/health":
            await JSONResponse({"status": "ok"})(scope, receive, send)
            return
        if path.startswith("/_admin/"):
            from .admin import admin

            response = await admin(request, self.state)
            await response(scope, receive, send)
            return
        matches = [(op, m) for verb, pattern, op in _ROUTES if verb == method and (m := pattern.fullmatch(path))]
        if not matches:
            missing = DriveApiError(404, "notFound", f"No such method: {method} {path}")
            await error_response(missing)(scope, receive, send)
            return
        operation, found = matches[0]
        try:
            response, drop = await self._call(operation, found.groupdict(), request)
        except ClientDisconnect:
            return
        self.state.statuses[f"{operation} {response.status_code}"] += 1
        if drop and await reset_connection(receive, send):  # handled, answer lost
            return
        await response(scope, receive, send)

    async def _call(self, operation: str, params: dict[str, str], request: Request) -> tuple[Response, bool]:
        state = self.state
        fault = state.faults.fire(operation)
        drop = fault is not None and fault.action == "drop"
        if fault is not None and fault.action == "keep_part":
            request.state.keep_bytes, fault = fault.keep_bytes, None  # the upload stores only that much
        if fault is not None and fault.action == "expire":
            state.uploads.expire(request.query_params.get("upload_id", ""))
            fault = None  # the request goes on, to a session that is no more: 404
        try:
            if fault is not None and not drop:
                await request.body()  # a real server reads the request before it answers
                raise fault.error()
            if operation in ("token", "revoke"):
                return await self._oauth(operation, request), drop
            principal = self._principal(request)
            return await api.handle(operation, params, request, state, principal), drop
        except DriveApiError as exc:
            return error_response(exc), drop
        except ClientDisconnect:
            raise
        except Exception:
            log.exception("unhandled error in %s", operation)
            return error_response(DriveApiError(500, "backendError", "Backend Error")), False

    def _principal(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        token = (
            header[7:].strip() if header.lower().startswith("bearer ") else request.query_params.get("access_token", "")
        )
        principal = self.state.tokens.principal(token) if token else None
        if principal is None:
            raise DriveApiError(
                401,
                "authError",
                "Request had invalid authentication credentials. Expected OAuth 2 "
                "access token, login cookie or other valid authentication credential.",
            )
        return principal

    async def _oauth(self, operation: str, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        form.update(request.query_params)
        tokens = self.state.tokens
        if operation == "revoke":
            ok = tokens.revoke(form.get("token", ""))
            return JSONResponse(
                {} if ok else {"error": "invalid_token", "error_description": "Token expired or revoked"},
                status_code=200 if ok else 400,
            )
        url = request.url
        try:
            return JSONResponse(tokens.grant(form, f"{url.scheme}://{url.netloc}/token"))
        except OAuthError as exc:
            return JSONResponse({"error": exc.code, "error_description": exc.description}, status_code=exc.status)
