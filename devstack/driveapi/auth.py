"""OAuth 2.0 for the local Drive server: the token endpoint, access tokens with expiry, and
revocable refresh tokens.

Grants, as Google's token endpoint (https://oauth2.googleapis.com/token) answers them:
- ``refresh_token``: ``client_id``, ``client_secret``, ``refresh_token`` of a registered client
  (admin API: ``POST /_admin/clients``, ``POST /_admin/refresh_tokens``); a revoked or unknown
  token → 400 ``invalid_grant`` "Token has been expired or revoked.";
- ``urn:ietf:params:oauth:grant-type:jwt-bearer``: an RS256 assertion from a registered service
  account (``POST /_admin/service_accounts`` with its public key); ``aud`` must be this token
  endpoint or Google's (google-auth always signs Google's); ``sub`` (domain-wide delegation)
  makes the token act as that user.
Access tokens live ``token_ttl_s`` seconds (``expires_in``); ``POST /revoke?token=`` revokes
a refresh or access token as Google's revoke endpoint does.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import jwt

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"  # google-auth signs this audience whatever its token_uri


class OAuthError(Exception):
    """A token endpoint error: ``{"error": code, "error_description": text}`` with ``status``."""

    def __init__(self, code: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.code, self.description, self.status = code, description, status


@dataclass
class RefreshToken:
    client_id: str
    principal: str
    revoked: bool = False


@dataclass
class TokenService:
    token_ttl_s: float = 3600.0
    clients: dict[str, str] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)
    service_accounts: dict[str, str] = field(default_factory=dict)  # email -> public key PEM
    access: dict[str, tuple[str, float]] = field(default_factory=dict)  # token -> (principal, expires at)
    static: dict[str, str] = field(default_factory=dict)  # never-expiring tokens (local stack convenience)

    def issue(self, principal: str) -> dict[str, Any]:
        token = "ya29.local-" + secrets.token_urlsafe(24)
        self.access[token] = (principal, time.time() + self.token_ttl_s)
        return {
            "access_token": token,
            "expires_in": int(self.token_ttl_s),
            "token_type": "Bearer",
            "scope": "https://www.googleapis.com/auth/drive",
        }

    def grant(self, form: dict[str, str], token_url: str) -> dict[str, Any]:
        kind = form.get("grant_type")
        if kind == "refresh_token":
            return self._refresh(form)
        if kind == JWT_BEARER:
            return self._jwt_bearer(form.get("assertion", ""), token_url)
        raise OAuthError("unsupported_grant_type", f"Invalid grant_type: {kind}")

    def _refresh(self, form: dict[str, str]) -> dict[str, Any]:
        client_id = form.get("client_id", "")
        if client_id not in self.clients or not secrets.compare_digest(
            self.clients[client_id], form.get("client_secret", "")
        ):
            raise OAuthError("invalid_client", "The OAuth client was not found.", 401)
        held = self.refresh_tokens.get(form.get("refresh_token", ""))
        if held is None or held.revoked or held.client_id != client_id:
            raise OAuthError("invalid_grant", "Token has been expired or revoked.")
        return self.issue(held.principal)

    def _jwt_bearer(self, assertion: str, token_url: str) -> dict[str, Any]:
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise OAuthError("invalid_grant", f"Invalid JWT: {exc}") from None
        email = str(unverified.get("iss", ""))
        key = self.service_accounts.get(email)
        if key is None:
            raise OAuthError("invalid_grant", f"Invalid JWT Signature. (no service account {email!r})")
        try:
            claims = jwt.decode(assertion, key, algorithms=["RS256"], audience=[token_url, GOOGLE_TOKEN_URI], leeway=5)
        except jwt.PyJWTError as exc:
            raise OAuthError("invalid_grant", f"Invalid JWT: {exc}") from None
        if not claims.get("scope"):
            raise OAuthError("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        return self.issue(str(claims.get("sub") or email))

    def principal(self, token: str) -> str | None:
        """Who ``token`` acts for, or None when it is unknown, revoked or expired."""
        if token in self.static:
            return self.static[token]
        held = self.access.get(token)
        if held is None or held[1] <= time.time():
            return None
        return held[0]

    def revoke(self, token: str) -> bool:
        if token in self.refresh_tokens:
            self.refresh_tokens[token].revoked = True
            return True
        return self.access.pop(token, None) is not None

    def new_refresh_token(self, client_id: str, principal: str) -> str:
        if client_id not in self.clients:
            raise OAuthError("invalid_client", f"no client {client_id!r}")
        token = "1//local-" + secrets.token_urlsafe(24)
        self.refresh_tokens[token] = RefreshToken(client_id, principal)
        return token

    def expire_all(self) -> int:
        """Expire every access token now (refresh tokens stay valid)."""
        count = len(self.access)
        self.access = {t: (p, 0.0) for t, (p, _) in self.access.items()}
        return count
