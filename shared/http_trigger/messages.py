"""The HTTP trigger's request and answer, as its endpoints see them (the web framework stays in
functions/http_trigger/main.py), and the 400 an endpoint raises for bad input."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    authorization: str | None = None
    body: bytes = b""
    idempotency_key: str | None = None  # the Idempotency-Key header: a retried POST /sync is the same run


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class BadRequest(Exception):
    """400 with the message (``field: value expectation``)."""


def error(status: int, message: str, **headers: str) -> HttpResponse:
    return HttpResponse(status, {"error": message}, dict(headers))
