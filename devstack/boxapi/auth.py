"""Access tokens: the OAuth 2.0 token endpoint and the Bearer check of every API call.

Grants: JWT bearer (signature verified with the app's registered public key, ``kid``
looked up like Box does), client credentials (CCG), authorization code (codes minted
through the admin API, standing in for the browser step) and refresh token (single-use,
rotated). A developer token given at start is accepted as a Bearer token and never
expires unless the admin API expires it. Issued tokens live in SQLite, so they survive
restarts; used JWT ``jti`` values are remembered in memory only.
"""

from __future__ import annotations

import secrets
import sqlite3
import string
import time
from typing import Any

import jwt

from .config import AppCredentials, ServerConfig
from .db import Database
from .errors import OAuthError, Unauthorized
from .users import UserStore

BOX_AUDIENCE = "https://api.box.com/oauth2/token"
AUTH_CODE_TTL_S = 30.0
REFRESH_TTL_S = 60 * 24 * 3600.0
JWT_MAX_LIFETIME_S = 60.0
_ALPHABET = string.ascii_letters + string.digits
_JWT_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256"]


def new_secret(length: int = 32) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


class TokenService:
    def __init__(self, db: Database, users: UserStore, config: ServerConfig) -> None:
        self._db = db
        self._users = users
        self._config = config
        self._used_jti: dict[str, float] = {}
        for app in config.apps:
            self.register_app(app)
        if config.developer_token:
            self.install_developer_token(config.developer_token)

    # -- setup -------------------------------------------------------------------------------

    def register_app(self, app: AppCredentials) -> None:
        with self._db.tx() as conn:
            conn.execute(
                "INSERT INTO apps (client_id, client_secret, enterprise_id) VALUES (?, ?, ?) ON CONFLICT (client_id)"
                " DO UPDATE SET client_secret = excluded.client_secret, enterprise_id = excluded.enterprise_id",
                (app.client_id, app.client_secret, app.enterprise_id),
            )
            for kid, pem in app.public_keys.items():
                conn.execute(
                    "INSERT INTO jwt_keys (client_id, kid, pem) VALUES (?, ?, ?)"
                    " ON CONFLICT (client_id, kid) DO UPDATE SET pem = excluded.pem",
                    (app.client_id, kid, pem),
                )

    def install_developer_token(self, token: str) -> None:
        with self._db.tx() as conn:
            conn.execute(
                "INSERT INTO tokens (token, kind, user_id, expires_at) VALUES (?, 'developer', ?, NULL)"
                " ON CONFLICT (token) DO UPDATE SET expires_at = NULL, revoked = 0",
                (token, self._users.developer()["id"]),
            )

    def expire(self, token: str | None = None, *, include_developer: bool = True) -> int:
        """Make access tokens expired now (all, or one); returns how many."""
        sql, params = "UPDATE tokens SET expires_at = ?", [time.time() - 1]
        clauses = []
        if token is not None:
            clauses.append("token = ?")
            params.append(token)
        if not include_developer:
            clauses.append("kind != 'developer'")
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        with self._db.tx() as conn:
            return conn.execute(sql, params).rowcount

    def new_authorization_code(self, client_id: str, user_id: str | None) -> str:
        app = self._app(client_id)
        if app is None:
            raise OAuthError("invalid_client", f"unknown client_id {client_id!r}")
        user = self._users.app_user(user_id, app["enterprise_id"]) if user_id else self._users.developer()
        code = new_secret()
        with self._db.tx() as conn:
            conn.execute(
                "INSERT INTO auth_codes (code, user_id, client_id, expires_at) VALUES (?, ?, ?, ?)",
                (code, user["id"], client_id, time.time() + AUTH_CODE_TTL_S),
            )
        return code

    # -- the Bearer check ----------------------------------------------------------------------

    def authenticate(self, authorization: str | None, query_token: str | None = None) -> sqlite3.Row:
        """The user a request acts as; :class:`Unauthorized` for a bad or expired token."""
        token = None
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                token = value.strip()
        token = token or query_token
        if not token:
            raise Unauthorized(None)
        row = self._db.query_one("SELECT * FROM tokens WHERE token = ?", (token,))
        if row is None or row["revoked"]:
            raise Unauthorized("The access token provided is invalid.")
        if row["expires_at"] is not None and row["expires_at"] <= time.time():
            raise Unauthorized("The access token provided has expired.")
        user = self._users.get(row["user_id"])
        if user is None:
            raise Unauthorized("The access token provided is invalid.")
        return user

    # -- POST /oauth2/token ---------------------------------------------------------------------

    def grant(self, form: dict[str, str], own_token_url: str) -> dict[str, Any]:
        grant_type = form.get("grant_type")
        if grant_type == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return self._jwt_grant(form, own_token_url)
        if grant_type == "client_credentials":
            return self._ccg_grant(form)
        if grant_type == "refresh_token":
            return self._refresh_grant(form)
        if grant_type == "authorization_code":
            return self._code_grant(form)
        raise OAuthError("invalid_request", "Invalid grant_type parameter or parameter missing")

    def revoke(self, form: dict[str, str]) -> None:
        self._client(form)
        token = form.get("token", "")
        with self._db.tx() as conn:
            conn.execute("UPDATE tokens SET revoked = 1 WHERE token = ?", (token,))
            conn.execute("UPDATE refresh_tokens SET used = 1 WHERE token = ?", (token,))

    def _app(self, client_id: str | None) -> sqlite3.Row | None:
        if not client_id:
            return None
        return self._db.query_one("SELECT * FROM apps WHERE client_id = ?", (client_id,))

    def _client(self, form: dict[str, str]) -> sqlite3.Row:
        app = self._app(form.get("client_id"))
        if app is None or not secrets.compare_digest(app["client_secret"], form.get("client_secret", "")):
            raise OAuthError("invalid_client", "The client credentials are invalid")
        return app

    def _issue(self, user_id: str, client_id: str | None, kind: str, *, with_refresh: bool) -> dict[str, Any]:
        token = new_secret()
        ttl = self._config.token_ttl_s
        body: dict[str, Any] = {"access_token": token, "expires_in": int(ttl), "restricted_to": []}
        with self._db.tx() as conn:
            conn.execute(
                "INSERT INTO tokens (token, kind, user_id, client_id, expires_at) VALUES (?, ?, ?, ?, ?)",
                (token, kind, user_id, client_id, time.time() + ttl),
            )
            if with_refresh:
                refresh = new_secret(64)
                conn.execute(
                    "INSERT INTO refresh_tokens (token, user_id, client_id, expires_at) VALUES (?, ?, ?, ?)",
                    (refresh, user_id, client_id, time.time() + REFRESH_TTL_S),
                )
                body["refresh_token"] = refresh
        body["token_type"] = "bearer"
        return body

    def _ccg_grant(self, form: dict[str, str]) -> dict[str, Any]:
        app = self._client(form)
        subject_type, subject_id = form.get("box_subject_type"), form.get("box_subject_id")
        if subject_type == "enterprise" and subject_id == app["enterprise_id"]:
            user = self._users.service_account(app["enterprise_id"])
        elif subject_type == "user" and subject_id and subject_id.isdigit():
            user = self._users.app_user(subject_id, app["enterprise_id"])
        else:
            raise OAuthError("invalid_grant", "Grant credentials are invalid")
        return self._issue(user["id"], app["client_id"], "ccg", with_refresh=False)

    def _jwt_grant(self, form: dict[str, str], own_token_url: str) -> dict[str, Any]:
        assertion = form.get("assertion", "")
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise OAuthError("invalid_grant", f"Invalid JWT assertion: {exc}") from exc
        app = self._client(form)
        if unverified.get("iss") != app["client_id"]:
            raise OAuthError("invalid_grant", "Please check the 'iss' claim.")
        key = self._public_key(app["client_id"], header.get("kid"))
        try:
            claims = jwt.decode(
                assertion,
                key,
                algorithms=_JWT_ALGORITHMS,
                audience=[BOX_AUDIENCE, own_token_url],
                options={"require": ["iss", "sub", "aud", "exp", "jti"]},
            )
        except jwt.InvalidSignatureError as exc:
            raise OAuthError(
                "invalid_grant",
                'Signature verification error. The public key identified by "kid" must correspond to the'
                " private key used for signing.",
            ) from exc
        except jwt.ExpiredSignatureError as exc:
            raise OAuthError(
                "invalid_grant",
                "Current date time must be before the expiration date time listed in the 'exp' claim.",
            ) from exc
        except jwt.InvalidAudienceError as exc:
            raise OAuthError("invalid_grant", "Please check the 'aud' claim.") from exc
        except jwt.PyJWTError as exc:
            raise OAuthError("invalid_grant", f"Invalid JWT assertion: {exc}") from exc
        now = time.time()
        if claims["exp"] - now > JWT_MAX_LIFETIME_S:
            raise OAuthError("invalid_grant", "Please check the 'exp' claim. It must be at most 60 seconds ahead.")
        self._check_jti(str(claims["jti"]), float(claims["exp"]), now)
        subject, sub_type = str(claims["sub"]), claims.get("box_sub_type")
        if sub_type == "enterprise" and subject == app["enterprise_id"]:
            user = self._users.service_account(app["enterprise_id"])
        elif sub_type == "user" and subject.isdigit():
            user = self._users.app_user(subject, app["enterprise_id"])
        else:
            raise OAuthError("invalid_grant", "Please check the 'sub' claim.")
        return self._issue(user["id"], app["client_id"], "jwt", with_refresh=False)

    def _public_key(self, client_id: str, kid: str | None) -> str:
        rows = self._db.query("SELECT kid, pem FROM jwt_keys WHERE client_id = ?", (client_id,))
        keys = {row["kid"]: row["pem"] for row in rows}
        pem = keys.get(kid or "") or keys.get("*")
        if pem is None:
            raise OAuthError("invalid_grant", "kid invalid, unable to lookup correct key")
        return pem

    def _check_jti(self, jti: str, exp: float, now: float) -> None:
        self._used_jti = {key: until for key, until in self._used_jti.items() if until > now}
        if not 16 <= len(jti) <= 128 or jti in self._used_jti:
            raise OAuthError("invalid_grant", "Please check the 'jti' claim. A unique 'jti' value is required.")
        self._used_jti[jti] = exp

    def _code_grant(self, form: dict[str, str]) -> dict[str, Any]:
        app = self._client(form)
        with self._db.tx() as conn:
            row = conn.execute("SELECT * FROM auth_codes WHERE code = ?", (form.get("code", ""),)).fetchone()
            if row is None or row["used"] or row["client_id"] != app["client_id"]:
                raise OAuthError("invalid_grant", "Auth code doesn't exist or is invalid for the client")
            if row["expires_at"] <= time.time():
                raise OAuthError("invalid_grant", "The authorization code has expired.")
            conn.execute("UPDATE auth_codes SET used = 1 WHERE code = ?", (row["code"],))
        return self._issue(row["user_id"], app["client_id"], "oauth", with_refresh=True)

    def _refresh_grant(self, form: dict[str, str]) -> dict[str, Any]:
        app = self._client(form)
        with self._db.tx() as conn:
            row = conn.execute(
                "SELECT * FROM refresh_tokens WHERE token = ?", (form.get("refresh_token", ""),)
            ).fetchone()
            if row is None or row["used"] or row["client_id"] != app["client_id"] or row["expires_at"] <= time.time():
                raise OAuthError("invalid_grant", "Invalid refresh token")
            conn.execute("UPDATE refresh_tokens SET used = 1 WHERE token = ?", (row["token"],))
        return self._issue(row["user_id"], app["client_id"], "oauth", with_refresh=True)
