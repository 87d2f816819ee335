"""``POST /oauth2/token`` and ``POST /oauth2/revoke`` (form-encoded, like Box)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.responses import Response

from .app import Ctx, Route
from .errors import OAuthError, json_response


async def _form(ctx: Ctx) -> dict[str, str]:
    content_type = ctx.request.headers.get("content-type", "")
    if not content_type.startswith("application/x-www-form-urlencoded"):
        raise OAuthError("invalid_request", "Content-Type must be application/x-www-form-urlencoded")
    return dict(parse_qsl((await ctx.request.body()).decode("utf-8", "replace"), keep_blank_values=True))


async def token(ctx: Ctx) -> Response:
    form = await _form(ctx)
    return json_response(ctx.state.tokens.grant(form, f"{ctx.origin}/oauth2/token"))


async def revoke(ctx: Ctx) -> Response:
    ctx.state.tokens.revoke(await _form(ctx))
    return Response(status_code=200)


ROUTES = [
    Route("POST", "/oauth2/token", "oauth_token", token, auth=False),
    Route("POST", "/oauth2/revoke", "oauth_revoke", revoke, auth=False),
]
