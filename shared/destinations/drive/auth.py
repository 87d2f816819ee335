"""Credentials for Drive: a service account key (Shared Drives, or domain-wide delegation with
``subject``) or a user's OAuth client and refresh token, through google-auth.

Tokens are refreshed *before* they expire: google-auth treats a token as expired 3 min 45 s
ahead of its expiry (``google.auth._helpers.REFRESH_THRESHOLD``), and :meth:`DriveCredentials.token`
refreshes under one lock per destination, so concurrent uploads share one refresh. A refresh
the token endpoint refuses for good (a revoked or expired refresh token, a deleted key) is a
``PermanentError`` that says how to fix it; network trouble and 5xx are ``TransientError``.
Which it was is judged by the token endpoint's own answer: google-auth calls only 500, 503,
504, 408 and 429 retryable, so a 502 from a proxy would otherwise read as a revoked token.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from typing import Any

import google.auth.exceptions
import google.auth.transport.requests
import google.oauth2.credentials
import google.oauth2.service_account
import requests

from shared import log
from shared.config.drive import DriveAuth
from shared.config.secrets import MASK
from shared.errors import ConfigError, PermanentError, TransientError

SCOPES = ["https://www.googleapis.com/auth/drive"]
logger = log.get_logger(__name__)


def credentials_for(auth: DriveAuth, where: str) -> Any:
    """google-auth credentials for ``auth`` (secrets resolved now); ConfigError naming the field."""
    if auth.method == "service_account":
        assert auth.service_account_key is not None
        try:
            info = json.loads(auth.service_account_key.reveal())
            if not isinstance(info, dict):  # e.g. the key JSON-encoded twice (Terraform jsonencode(file(...)))
                raise ValueError(f"the JSON is a {type(info).__name__}, not an object")
            creds = google.oauth2.service_account.Credentials.from_service_account_info(info, scopes=SCOPES)  # type: ignore[no-untyped-call]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(
                f"{where}.auth.service_account_key: not a service account JSON key ({exc.__class__.__name__}: "
                f"{str(exc)[:120]}); expected the JSON file Google Cloud gives for a key"
            ) from None
        return creds.with_subject(auth.subject) if auth.subject else creds
    assert auth.client_secret is not None and auth.refresh_token is not None
    return google.oauth2.credentials.Credentials(  # type: ignore[no-untyped-call]
        token=None,
        refresh_token=auth.refresh_token.reveal(),
        token_uri=auth.token_uri,
        client_id=auth.client_id,
        client_secret=auth.client_secret.reveal(),
    )


class TokenRequest(google.auth.transport.requests.Request):
    """google-auth's transport, remembering the token endpoint's last answer: its HTTP status
    and its OAuth ``error`` code (None when the body is no JSON object naming one)."""

    def __init__(self, session: requests.Session) -> None:
        super().__init__(session)
        self.status: int | None = None
        self.oauth_error: str | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        response = super().__call__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self.status, self.oauth_error = response.status, _oauth_error(response.data)
        return response

    def refused_for_good(self) -> bool:
        """Whether the last answer was a 4xx naming an OAuth error (invalid_grant, invalid_client,
        unauthorized_client...): anything else (5xx, 408, 429, a proxy's HTML page) may pass."""
        status = self.status
        return status is not None and 400 <= status < 500 and status not in (408, 429) and bool(self.oauth_error)


def _oauth_error(body: Any) -> str | None:
    try:
        found = json.loads(body).get("error")
    except (ValueError, TypeError, AttributeError):
        return None
    return found if isinstance(found, str) else None


class DriveCredentials:
    """One destination's credentials and the one lock their refresh happens under."""

    def __init__(self, auth: DriveAuth, where: str, session: requests.Session) -> None:
        self.auth, self.where = auth, where
        self._credentials = credentials_for(auth, where)
        self._request = TokenRequest(session)
        self._lock = threading.Lock()

    def token(self, *, force: bool = False, stale: str | None = None) -> str:
        """A valid access token, refreshed first when it is missing, about to expire, or
        ``force``d (a 401 from the API; ``stale`` is the token that was refused, so threads
        refused together refresh once)."""
        with self._lock:
            creds = self._credentials
            if force and creds.token is not None and creds.token != stale:
                return str(creds.token)  # another thread refreshed already
            if force or not creds.valid:
                cause = "refused (HTTP 401)" if force else "first" if creds.token is None else "about to expire"
                self._refresh(cause)
            return str(creds.token)

    def _refresh(self, cause: str) -> None:
        self._request.status = self._request.oauth_error = None
        try:
            self._credentials.refresh(self._request)
        except google.auth.exceptions.TransportError as exc:
            raise TransientError(f"{self.where}: cannot reach the OAuth token endpoint: {exc}") from None
        except google.auth.exceptions.RefreshError as exc:
            raise self._refused(exc) from None
        # the refresh cycle, for an operator watching a long-lived refresh token (never the token itself)
        expiry = self._credentials.expiry
        logger.info(
            "drive access token refreshed",
            where=self.where,
            method=self.auth.method,
            cause=cause,
            expires_at=expiry.replace(tzinfo=dt.UTC).isoformat() if expiry is not None else None,
        )

    def _refused(self, exc: google.auth.exceptions.RefreshError) -> Exception:
        detail = exc.args[0] if exc.args else str(exc)
        answered = self._request.status is not None
        if getattr(exc, "retryable", False) or (answered and not self._request.refused_for_good()):
            status = f"{self._request.status} " if answered else ""
            return TransientError(f"{self.where}: token refresh failed for now: {status}{detail}")
        if self.auth.method == "oauth":
            kept = self.auth.refresh_token.describe() if self.auth.refresh_token else MASK
            at = f"{self.where}.auth.refresh_token" + ("" if kept == MASK else f" ({kept})")
            return PermanentError(
                f"{self.where}: Google refused the OAuth refresh token ({detail}): it was revoked, expired "
                f"(unused for 6 months, or a 'testing' consent screen's 7 days) or belongs to another client. "
                f"Fix: authorize the app again as the Drive user (docs/drive.md, 'A new refresh token'), store the "
                f"new refresh token in {at}, "
                f"then redeliver (offsite dlq replay)."
            )
        return PermanentError(
            f"{self.where}: Google refused the service account's token request ({detail}). Fix: check that the key "
            f"in {self.where}.auth.service_account_key is current (not deleted or disabled)"
            + (
                f" and that domain-wide delegation to {self.auth.subject} is granted for the Drive scope"
                if self.auth.subject
                else ""
            )
            + ", then redeliver (offsite dlq replay)."
        )
