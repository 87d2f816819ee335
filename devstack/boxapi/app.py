"""The ASGI application: route table, request log, faults, Bearer check, error mapping.

URL layout (the SDK is configured with ``BaseUrls(base_url=B, upload_url=B + "/api",
oauth_2_url=B + "/oauth2")``):

- ``/2.0/...``       the API host (api.box.com/2.0)
- ``/api/2.0/...``   the upload host (upload.box.com/api/2.0): uploads and upload sessions
- ``/oauth2/token``, ``/oauth2/revoke``
- ``/dl/...``        signed download links (dl.boxcloud.com)
- ``/health``, ``/_admin/...``   not Box: readiness and the test/admin API
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from devstack.connreset import reset_connection

from .blobs import BlobStore
from .config import ServerConfig
from .db import Database
from .errors import BoxError, OAuthError, Unauthorized, json_response, new_request_id
from .faults import Fault, FaultBook, RequestLog
from .items import ItemStore
from .ratelimit import RateLimiter
from .users import UserStore

log = logging.getLogger("devstack.boxapi")


@dataclass
class State:
    """Everything handlers share inside one server process."""

    config: ServerConfig
    db: Database
    blobs: BlobStore
    users: UserStore
    items: ItemStore
    tokens: Any  # auth.TokenService (imported lazily to keep import order simple)
    faults: FaultBook = field(default_factory=FaultBook)
    limiter: RateLimiter | None = None
    log: RequestLog = field(default_factory=RequestLog)
    download_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    # upload session id -> running commit (assembly, checks, file creation)
    assemblies: dict[str, asyncio.Task] = field(default_factory=dict)
    # upload session id -> whole-file SHA-1 computed as parts arrive (session_hash)
    digests: dict[str, Any] = field(default_factory=dict)
    # (session id, offset) -> [lock, users]: one writer per part range at a time
    part_locks: dict[tuple[str, int], list] = field(default_factory=dict)


@dataclass
class Ctx:
    """One API call as a handler sees it."""

    request: Request
    state: State
    params: dict[str, str]
    user: sqlite3.Row | None
    request_id: str

    @property
    def origin(self) -> str:
        """``scheme://host[:port]`` the client used: absolute URLs we hand out start with it."""
        url = self.request.url
        return f"{url.scheme}://{url.netloc}"

    @property
    def user_id(self) -> str:
        assert self.user is not None
        return self.user["id"]


Handler = Callable[[Ctx], Awaitable[Response]]


@dataclass
class Route:
    method: str
    template: str
    operation: str
    handler: Handler
    auth: bool = True
    pattern: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.template)
        self.pattern = re.compile(f"^{regex}$")


class Router:
    def __init__(self, routes: list[Route]) -> None:
        self._routes = routes

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """(route, path params, whether the path exists under another method)."""
        path_known = False
        for route in self._routes:
            found = route.pattern.match(path)
            if found is None:
                continue
            if route.method == method:
                return route, found.groupdict(), True
            path_known = True
        return None, {}, path_known


class Dropped(Exception):
    """The connection was reset on purpose (drop fault)."""


async def drop_connection(receive: Callable, send: Callable, after_bytes: int) -> None:
    """Read about ``after_bytes`` of the body, then reset the TCP connection.

    Uvicorn's ``send`` is a bound method of its request cycle, whose transport we abort;
    on another server we fall back to a response cut short (the client still fails).
    """
    received, more = 0, True
    while received < after_bytes and more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        received += len(message.get("body", b""))
        more = message.get("more_body", False)
    if await reset_connection(receive, send):
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]})
    await send({"type": "http.response.body", "body": b"{", "more_body": True})


class BoxApiApp:
    """The ASGI callable uvicorn serves."""

    def __init__(self, state: State, routes: list[Route], admin: Callable[[Request, State], Awaitable[Response]]):
        self.state = state
        self.router = Router(routes)
        self.admin = admin

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope["path"]
        request = Request(scope, receive)
        if path == "/health":
            response: Response = json_response({"status": "ok"})
        elif path.startswith("/_admin/"):
            try:
                response = await self.admin(request, self.state)
            except BoxError as exc:
                response = exc.response(new_request_id())
        else:
            try:
                response = await self._api_call(request, scope, receive, send)
            except (ClientDisconnect, Dropped):
                return
        await response(scope, receive, send)

    async def _lifespan(self, receive: Callable, send: Callable) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for task in self.state.assemblies.values():
                    task.cancel()
                for digest in self.state.digests.values():
                    if digest.task is not None:
                        digest.task.cancel()
                self.state.db.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _api_call(self, request: Request, scope: dict, receive: Callable, send: Callable) -> Response:
        request_id = new_request_id()
        route, params, path_known = self.router.match(scope["method"], scope["path"])
        if route is None:
            status, code = (405, "method_not_allowed") if path_known else (404, "not_found")
            return BoxError(status, code).response(request_id)
        entry = self.state.log.start(route.operation, scope["method"], scope["path"])
        try:
            response = await self._guarded(route, params, request, request_id, receive, send)
        except (ClientDisconnect, Dropped):
            entry.status = 0
            raise
        finally:
            entry.faults = [f.action for f in getattr(request.state, "faults", [])]
        entry.status = response.status_code
        response.headers["box-request-id"] = request_id
        return response

    async def _guarded(
        self, route: Route, params: dict[str, str], request: Request, request_id: str, receive, send
    ) -> Response:
        fired: list[Fault] = self.state.faults.take(route.operation)
        request.state.faults = fired
        for fault in fired:
            if fault.action == "delay":
                await asyncio.sleep(fault.seconds)
        for fault in fired:
            if fault.action in ("rate_limit", "error"):
                return fault.error().response(request_id)
            if fault.action == "accepted":
                return Response(status_code=202, headers=fault.retry_after_header(1))
            if fault.action == "drop":
                await drop_connection(receive, send, fault.after_bytes)
                raise Dropped()
        response = await self._handle(route, params, request, request_id)
        if any(fault.action == "lose_answer" for fault in fired):
            await drop_connection(receive, send, 0)  # the call took effect; its answer never arrives
            raise Dropped()
        return response

    async def _handle(self, route: Route, params: dict[str, str], request: Request, request_id: str) -> Response:
        try:
            user = None
            if route.auth:
                user = self.state.tokens.authenticate(
                    request.headers.get("authorization"), request.query_params.get("access_token")
                )
                if self.state.limiter is not None:
                    self.state.limiter.admit(str(user["id"]), route.operation)
            return await route.handler(Ctx(request, self.state, params, user, request_id))
        except BoxError as exc:
            return exc.response(request_id)
        except OAuthError as exc:
            return exc.response()
        except Unauthorized as exc:
            return exc.response()
        except (ClientDisconnect, Dropped):
            raise
        except Exception:
            log.exception("unhandled error in %s %s", route.method, route.template)
            return BoxError(500, "internal_server_error", "Internal Server Error").response(request_id)
