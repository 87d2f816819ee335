"""Box authentication: JWT app config, client credentials (CCG) or a developer token.

box-sdk-gen builds the token requests (JWT assertion signing, CCG form); this module owns
the token for the whole process: one lock, one refresh at a time, and a refresh only when
the token that failed is still the current one, so a burst of parallel 401s costs one
token request. Retries of token requests go through :mod:`shared.retry`; the SDK's own
retry strategy is switched off so the two never stack.

Secrets are revealed only to build the SDK's config objects and are never logged; errors
name the config field and Box's error code, never a value.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from box_sdk_gen import BoxCCGAuth, BoxDeveloperTokenAuth, BoxJWTAuth, CCGConfig, JWTConfig
from box_sdk_gen.box.errors import BoxAPIError, BoxSDKError
from box_sdk_gen.networking.base_urls import BaseUrls
from box_sdk_gen.networking.network import NetworkSession
from box_sdk_gen.networking.retries import BoxRetryStrategy

from shared.config import BoxAuth, BoxDestination
from shared.errors import ConfigError, PermanentError, TransientError
from shared.log import get_logger
from shared.retry import parse_retry_after, retry_call

log = get_logger(__name__)
FIELD = "destinations.box.auth"
# Refresh this long before Box says the token expires, so no request starts with a dying token.
EXPIRY_MARGIN_S = 60.0
# Developer tokens cannot be refreshed and Box does not say when they expire.
NEVER = float("inf")


def base_urls(box: BoxDestination) -> BaseUrls:
    """The SDK's BaseUrls from config (no ``/2.0``: the SDK appends it)."""
    return BaseUrls(
        base_url=box.base_url.rstrip("/"), upload_url=box.upload_url.rstrip("/"), oauth_2_url=box.oauth_url.rstrip("/")
    )


def network_session(box: BoxDestination) -> NetworkSession:
    """An SDK network session aimed at the configured URLs, with the SDK's retries off."""
    no_retries = BoxRetryStrategy(max_attempts=1, max_retries_on_exception=0)
    return NetworkSession(base_urls=base_urls(box), retry_strategy=no_retries)


def sdk_auth(auth: BoxAuth) -> Any:
    """The box-sdk-gen Authentication object for ``auth.method``. Raises ConfigError."""
    if auth.method == "developer_token":
        if auth.developer_token is None:
            raise ConfigError(f"{FIELD}.developer_token: required when method is 'developer_token'")
        return BoxDeveloperTokenAuth(token=auth.developer_token.reveal())
    if auth.method == "ccg":
        if not auth.client_id or auth.client_secret is None or not auth.subject_id:
            raise ConfigError(f"{FIELD}: method 'ccg' needs client_id, client_secret and subject_id")
        kind = {"enterprise_id": auth.subject_id} if auth.subject_type == "enterprise" else {"user_id": auth.subject_id}
        return BoxCCGAuth(config=CCGConfig(client_id=auth.client_id, client_secret=auth.client_secret.reveal(), **kind))
    if auth.method == "jwt":
        if auth.jwt_config is None:
            raise ConfigError(f"{FIELD}.jwt_config: required when method is 'jwt' (the Box app's JSON config)")
        return BoxJWTAuth(config=_jwt_config(auth))
    raise ConfigError(f"{FIELD}.method: {auth.method!r} is not one of 'jwt', 'ccg', 'developer_token'")


def _jwt_config(auth: BoxAuth) -> JWTConfig:
    assert auth.jwt_config is not None
    text = auth.jwt_config.reveal()
    where = f"{FIELD}.jwt_config ({auth.jwt_config.describe()})"
    try:
        doc = json.loads(text)
        settings = doc["boxAppSettings"]
        if not settings["clientID"] or not settings["appAuth"]["privateKey"]:
            raise KeyError("clientID/privateKey")
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ConfigError(
            f"{where}: not a Box app JSON config (expected boxAppSettings.clientID, boxAppSettings.clientSecret, "
            "boxAppSettings.appAuth.publicKeyID/privateKey/passphrase and enterpriseID, as downloaded from the "
            "Box Developer Console)"
        ) from None
    if not doc.get("enterpriseID") and not doc.get("userID"):
        raise ConfigError(f"{where}: has neither enterpriseID nor userID; Box needs one as the token subject")
    return JWTConfig.from_config_json_string(text)


class BoxAuthenticator:
    """The process's Box access token: fetched lazily, refreshed by one owner at a time."""

    def __init__(self, box: BoxDestination) -> None:
        self.method = box.auth.method
        self._box = box
        self._session = network_session(box)
        self._sdk: Any = None
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0

    def header(self) -> str:
        """``Bearer …`` for the next request; fetches a token when there is none or it is about to expire."""
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires_at:
                self._refresh_locked()
            return f"Bearer {self._token}"

    def refresh(self, rejected_header: str) -> str:
        """Box answered 401 to ``rejected_header``: get a new token (once, however many threads ask)."""
        with self._lock:
            if self._token is not None and f"Bearer {self._token}" != rejected_header:
                return f"Bearer {self._token}"  # another thread already refreshed
            if self.method == "developer_token":
                raise PermanentError(
                    f"Box rejected the developer token (HTTP 401) at {self._box.base_url}: it is wrong or has expired "
                    f"(developer tokens last 60 minutes); set {FIELD}.developer_token to a fresh one, or use jwt/ccg"
                )
            self._refresh_locked()
            return f"Bearer {self._token}"

    def _refresh_locked(self) -> None:
        if self._sdk is None:
            self._sdk = sdk_auth(self._box.auth)
        if self.method == "developer_token":
            self._token = self._sdk.token
            self._expires_at = NEVER
            return
        token = retry_call(self._request_token, f"box {self.method} token", attempts=5)
        self._token = token.access_token
        lifetime = float(token.expires_in or 3600)
        self._expires_at = time.monotonic() + max(lifetime - EXPIRY_MARGIN_S, lifetime / 2)
        log.info("box token obtained", method=self.method, expires_in=token.expires_in)

    def _request_token(self) -> Any:
        try:
            return self._sdk.refresh_token(network_session=self._session)
        except BoxAPIError as exc:
            raise _token_error(self.method, self._box.base_url, exc) from None
        except BoxSDKError as exc:
            raise TransientError(f"Box token request to {self._box.base_url} failed: {exc.message}") from None
        except (ValueError, TypeError) as exc:
            # The SDK signs the JWT assertion here: a bad key or passphrase surfaces as these.
            raise ConfigError(
                f"{FIELD}.jwt_config: cannot sign the JWT assertion with the app's private key "
                f"({exc.__class__.__name__}); check privateKey and passphrase"
            ) from None


def _token_error(method: str, base_url: str, exc: BoxAPIError) -> Exception:
    info = exc.response_info
    status = info.status_code
    body = info.body or {}
    reason = str(body.get("error") or info.code or "")
    detail = str(body.get("error_description") or body.get("message") or "")
    if status == 429 or status >= 500:
        retry_after = parse_retry_after(
            (info.headers or {}).get("Retry-After") or (info.headers or {}).get("retry-after")
        )
        return TransientError(f"Box token request answered HTTP {status}", retry_after=retry_after)
    return PermanentError(
        f"Box authentication failed ({FIELD}.method={method!r}, token endpoint {base_url}/oauth2/token): "
        f"HTTP {status} {reason}: {detail}".rstrip(": ")
    )
