"""Box's error shapes: the client-error JSON, the OAuth 2.0 error JSON and the bare 401.

Every handler raises :class:`BoxError` (or :class:`OAuthError` on the token endpoint); the
dispatcher turns it into the response Box would send, with a fresh ``request_id``.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from starlette.responses import Response

HELP_URL = "http://developers.box.com/docs/#errors"

# Box's default messages for the generic codes (from the "Common errors" guide).
_DEFAULT_MESSAGES = {
    400: "Bad Request",
    403: "Access denied - insufficient permission",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    411: "content-length header was required, but not provided.",
    412: "The resource has been modified. Retrieve the resource again and retry",
    416: "Requested Range Not Satisfiable",
    429: "Request rate limit exceeded, please try again later",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Unavailable",
}


def new_request_id() -> str:
    """A request id shaped like Box's (hex, opaque)."""
    return secrets.token_hex(8)


class BoxError(Exception):
    """An error answered with Box's client-error JSON.

    ``headers`` are added to the response (``Retry-After`` on 429/503).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str | None = None,
        *,
        context_info: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message or _DEFAULT_MESSAGES.get(status, "Error")
        self.context_info = context_info
        self.headers = headers or {}
        super().__init__(f"{status} {code}: {self.message}")

    def body(self, request_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "error", "status": self.status, "code": self.code}
        if self.context_info is not None:
            body["context_info"] = self.context_info
        body["help_url"] = HELP_URL
        body["message"] = self.message
        body["request_id"] = request_id
        return body

    def response(self, request_id: str) -> Response:
        return json_response(self.body(request_id), self.status, headers=self.headers)


class OAuthError(Exception):
    """An error of the token endpoint: ``{"error": ..., "error_description": ...}``."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        self.error = error
        self.description = description
        self.status = status
        super().__init__(f"{error}: {description}")

    def response(self) -> Response:
        return json_response({"error": self.error, "error_description": self.description}, self.status)


class Unauthorized(Exception):
    """A missing, unknown, revoked or expired access token.

    Box answers 401 with an empty body and a ``WWW-Authenticate`` challenge.
    """

    def __init__(self, description: str | None) -> None:
        self.description = description
        super().__init__(description or "missing access token")

    def response(self) -> Response:
        challenge = 'Bearer realm="Service"'
        if self.description is not None:
            challenge += f', error="invalid_token", error_description="{self.description}"'
        return Response(status_code=401, headers={"WWW-Authenticate": challenge})


def json_response(body: Any, status: int = 200, *, headers: dict[str, str] | None = None) -> Response:
    """Compact JSON like Box's API (no spaces), ``application/json``."""
    content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(content=content, status_code=status, headers=headers, media_type="application/json")


def not_found(kind: str, item_id: str, prefix: str) -> BoxError:
    """Box's 404 for an unknown file or folder id, with its ``context_info.errors`` detail."""
    value = f"{prefix}_{item_id}"
    return BoxError(
        404,
        "not_found",
        "Not Found",
        context_info={
            "errors": [
                {
                    "reason": "invalid_parameter",
                    "name": kind,
                    "message": f"Invalid value '{value}'. '{kind}' with value '{value}' not found",
                }
            ]
        },
    )


def bad_request(message: str, code: str = "bad_request") -> BoxError:
    return BoxError(400, code, message)
