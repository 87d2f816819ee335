"""Google OIDC ID tokens, checked as Cloud Run's invoker check does: signature, audience, issuer, expiry.

The signature is checked against the certificates at ``http.certs_url`` (Google's by default;
the local stack serves its own), fetched through google-auth's transport and kept for
``http.certs_cache_s``; the claims through :func:`google.auth.jwt.decode`, the same call
:func:`google.oauth2.id_token.verify_token` makes for PEM certificates.

Behind Cloud Run's IAM check the function never sees a signature: Cloud Run verifies the token
and forwards it with the signature replaced by ``SIGNATURE_REMOVED_BY_GOOGLE``
(https://cloud.google.com/run/docs/troubleshooting#signature-removed). With
``http.platform_verified`` (set by Terraform) such a token's claims are checked here —
audience, issuer, expiry, invoker — and its signature is Cloud Run's to have checked; a
request cannot reach the function without passing that check, since ``allUsers`` is never an
invoker. Without it (the local stack) a removed signature is refused like a wrong one.

Failures are :class:`Unauthorized` with the HTTP status and a message saying what was wrong:
401 for a missing, malformed, wrongly signed or expired token (the caller must get a new
one); 403 for a good token that is not for this service (audience) or not from an invoker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import google.auth.exceptions
import google.auth.transport.requests
from google.auth import jwt

from shared.config.http import HttpSettings
from shared.errors import TransientError


class Unauthorized(Exception):
    """The request may not proceed: ``status`` 401 (no valid token) or 403 (not allowed)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Caller:
    """Who sent a verified token."""

    email: str | None
    subject: str
    issuer: str
    audience: str


CertsFetcher = Callable[[str], Mapping[str, str]]


class CertsCache:
    """The signing certificates of one URL, refetched after ``ttl_s``, or for an unknown key id
    (a rotation) at most once per ``UNKNOWN_KEY_REFETCH_S``: tokens naming made-up key ids must
    not turn each request into a fetch from Google."""

    UNKNOWN_KEY_REFETCH_S = 30.0

    def __init__(self, fetch: CertsFetcher | None = None) -> None:
        self._fetch = fetch or fetch_certs
        self._lock = threading.Lock()
        self._cached: dict[str, tuple[float, Mapping[str, str]]] = {}

    def get(self, url: str, ttl_s: float, key_id: str | None) -> Mapping[str, str]:
        with self._lock:
            stamp, certs = self._cached.get(url, (0.0, {}))
            age = time.monotonic() - stamp
            unknown = key_id is not None and key_id not in certs and age >= self.UNKNOWN_KEY_REFETCH_S
            if age >= ttl_s or unknown:
                certs = self._fetch(url)
                self._cached[url] = (time.monotonic(), certs)
            return certs


def fetch_certs(url: str) -> Mapping[str, str]:
    """``{key id: PEM certificate}`` from ``url`` (TransientError when it cannot be had)."""
    import json

    request = google.auth.transport.requests.Request()
    try:
        response = request(url, method="GET", timeout=10)
    except google.auth.exceptions.TransportError as exc:
        raise TransientError(f"fetching token certificates from {url}: {exc}") from None
    if response.status != 200:
        raise TransientError(f"fetching token certificates from {url}: HTTP {response.status}")
    try:
        certs = json.loads(response.data.decode("utf-8"))
    except ValueError:
        raise TransientError(f"token certificates at {url} are not JSON") from None
    if not isinstance(certs, dict) or not all(isinstance(v, str) for v in certs.values()):
        raise TransientError(f"token certificates at {url} are not a {{key id: PEM certificate}} object")
    return certs


_CERTS = CertsCache()
REMOVED_SIGNATURE = "SIGNATURE_REMOVED_BY_GOOGLE"


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer TOKEN`` header (401 without one)."""
    if not authorization:
        raise Unauthorized(401, "missing Authorization header; send 'Authorization: Bearer ID_TOKEN'")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(401, f"Authorization header must be 'Bearer ID_TOKEN', got scheme {scheme[:20]!r}")
    return token.strip()


def verify(authorization: str | None, settings: HttpSettings, *, certs: CertsCache | None = None) -> Caller:
    """Check the request's ID token against ``settings``; the caller it names, or Unauthorized."""
    token = bearer_token(authorization)
    try:
        header = jwt.decode_header(token)  # type: ignore[no-untyped-call]  # google-auth is untyped here
    except (ValueError, TypeError, RecursionError):
        raise Unauthorized(401, "the bearer token is not a JWT (expected header.payload.signature)") from None
    if token.endswith("." + REMOVED_SIGNATURE):
        claims = _platform_verified_claims(token, settings)
    else:
        key_id = header.get("kid") if isinstance(header, dict) else None
        if key_id is not None and not isinstance(key_id, str):
            raise Unauthorized(401, "invalid token: its header's kid is not a string")
        cert_map = (certs or _CERTS).get(settings.certs_url, settings.certs_cache_s, key_id)
        try:
            claims = jwt.decode(  # type: ignore[no-untyped-call]
                token, certs=cert_map, verify=True, clock_skew_in_seconds=settings.clock_skew_s
            )
        except (ValueError, RecursionError, google.auth.exceptions.GoogleAuthError) as exc:
            raise Unauthorized(401, f"invalid token: {_reason(exc)}") from None
    return _authorize(claims, settings)


def _platform_verified_claims(token: str, settings: HttpSettings) -> Mapping[str, Any]:
    """The claims of a token whose signature Cloud Run checked and removed; expiry checked here."""
    if not settings.platform_verified:
        raise Unauthorized(
            401,
            f"invalid token: its signature is {REMOVED_SIGNATURE!r}, which only Cloud Run may forward "
            "(http.platform_verified is off here)",
        )
    try:
        claims = jwt.decode(token, verify=False)  # type: ignore[no-untyped-call]
    except (ValueError, RecursionError, google.auth.exceptions.GoogleAuthError) as exc:
        raise Unauthorized(401, f"invalid token: {_reason(exc)}") from None
    now = time.time()
    expires = claims.get("exp")
    if not isinstance(expires, int | float) or expires < now - settings.clock_skew_s:
        raise Unauthorized(401, f"invalid token: expired (exp {expires!r} < now {int(now)})")
    return dict(claims)


def _for_this_service(audience: str, configured: Iterable[str]) -> bool:
    """A configured audience, or a configured URL followed by a path: the audience Cloud
    Scheduler and Cloud Tasks put in a token by default is the full target URL (…/sync/sales)."""
    return any(audience == a or ("://" in a and audience.startswith(a.rstrip("/") + "/")) for a in configured)


def _reason(exc: Exception) -> str:
    text = str(exc)
    if "expired" in text.lower():
        return f"expired ({text})"
    if "signature" in text.lower() or "certificate" in text.lower():
        return "signature does not match the certificates at the configured certs_url"
    return text[:200]


def _authorize(claims: Mapping[str, Any], settings: HttpSettings) -> Caller:
    issuer = str(claims.get("iss", ""))
    if issuer not in settings.issuers:
        raise Unauthorized(401, f"invalid token: issuer {issuer!r} is not one of {', '.join(settings.issuers)}")
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else list(audience or [])
    if not settings.audiences:
        raise Unauthorized(403, "http.audiences is not configured: no token can be for this service")
    matched = next((a for a in audiences if _for_this_service(a, settings.audiences)), None)
    if matched is None:
        raise Unauthorized(
            403, f"token audience {audience!r} is not this service (expected one of {', '.join(settings.audiences)})"
        )
    email = claims.get("email")
    allowed = settings.allowed_emails()
    if allowed is not None:
        if not isinstance(email, str) or not claims.get("email_verified", False) or email.lower() not in allowed:
            raise Unauthorized(403, f"{email or claims.get('sub')!r} is not an invoker of this service (http.invokers)")
    return Caller(email if isinstance(email, str) else None, str(claims.get("sub", "")), issuer, matched)
