"""HTTP to the Drive v3 API: one pooled session per destination, one error policy, retries
through shared.retry.

- 2xx and 308 (a resumable upload's "resume incomplete") → the response;
- 401 → the token is refreshed once and the request sent again; a second 401 is permanent;
- 403 ``userRateLimitExceeded``/``rateLimitExceeded``, 429, 408 and 5xx, connection errors and
  timeouts → ``TransientError`` carrying ``Retry-After``;
- 404 → :class:`DriveNotFound`; other 4xx → :class:`DriveApiError` (permanent) with Drive's reason.

Bodies are bytes (never one-shot streams), so every request can be retried as sent.
"""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter

from shared.config.drive import DriveDestination as DriveSettings
from shared.destinations.drive.auth import DriveCredentials
from shared.destinations.request_failures import request_failed
from shared.errors import PermanentError, TransientError
from shared.retry import parse_retry_after, retry_call

ATTEMPTS = 8
MAX_WAIT_S = 20.0
CONNECT_TIMEOUT_S = 10.0
RATE_LIMIT_REASONS = frozenset({"userRateLimitExceeded", "rateLimitExceeded", "sharingRateLimitExceeded"})


class DriveApiError(PermanentError):
    """A 4xx answer from Drive other than 401/429/rate limits, with Drive's ``reason``."""

    def __init__(self, message: str, *, http_status: int, reason: str | None) -> None:
        super().__init__(message)
        self.http_status, self.reason = http_status, reason


class DriveNotFound(DriveApiError):
    """404: the file, folder, Shared Drive or upload session is not there (or not visible)."""


def _reason(response: requests.Response) -> tuple[str | None, str]:
    try:
        error = response.json().get("error", {})
        errors = error.get("errors") or [{}]
        return errors[0].get("reason"), str(error.get("message") or response.reason)
    except (ValueError, AttributeError):
        return None, response.text[:200] or str(response.reason)


class DriveHttp:
    """Requests to one Drive API root (``api_url``) as one principal."""

    def __init__(self, settings: DriveSettings, where: str) -> None:
        self.settings, self.where = settings, where
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.credentials = DriveCredentials(settings.auth, where, requests.Session())
        root = settings.api_url.rstrip("/")
        self.api = root + "/drive/v3"
        self.upload = root + "/upload/drive/v3"

    def call(self, method: str, url: str, *, what: str, retry: bool = True, **kwargs: Any) -> requests.Response:
        """One API call (retried on TransientError when ``retry``); raises per the module's policy."""
        if not retry:
            return self._once(method, url, what, kwargs)
        return retry_call(
            lambda: self._once(method, url, what, kwargs),
            f"{self.where}: {what}",
            attempts=ATTEMPTS,
            initial_s=0.2,
            max_wait_s=MAX_WAIT_S,
        )

    def _once(self, method: str, url: str, what: str, kwargs: dict[str, Any]) -> requests.Response:
        token = self.credentials.token()
        response = self._send(method, url, token, what, kwargs)
        if response.status_code == 401:
            response.close()
            response = self._send(method, url, self.credentials.token(force=True, stale=token), what, kwargs)
            if response.status_code == 401:
                response.close()
                raise PermanentError(
                    f"{self.where}: {what}: Drive refused a freshly refreshed token (401); check {self.where}.auth"
                )
        self.check(response, what)
        return response

    def _send(self, method: str, url: str, token: str, what: str, kwargs: dict[str, Any]) -> requests.Response:
        """One request with ``token``; ``kwargs`` (requests' options) stay as given, for a resend."""
        headers = {**kwargs.get("headers", {}), "Authorization": f"Bearer {token}"}
        options = {k: v for k, v in kwargs.items() if k != "headers"}
        timeout = (CONNECT_TIMEOUT_S, self.settings.timeout_s)
        try:
            return self.session.request(method, url, headers=headers, timeout=timeout, **options)
        except requests.RequestException as exc:
            raise request_failed(f"{self.where}: {what}", exc, "Drive", self.where) from None

    def check(self, response: requests.Response, what: str) -> None:
        status = response.status_code
        if status < 300 or status == 308:
            return
        reason, message = _reason(response)
        response.close()
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        text = f"{self.where}: {what}: {status} {reason or ''} {message}".replace("  ", " ")
        if status in (408, 429) or status >= 500 or (status == 403 and reason in RATE_LIMIT_REASONS):
            raise TransientError(text, retry_after=retry_after)
        if status == 404:
            raise DriveNotFound(text, http_status=status, reason=reason)
        raise DriveApiError(text, http_status=status, reason=reason)

    def delete(self, file_id: str, what: str) -> None:
        """Delete a file or folder (with its content); one that is already gone is fine."""
        try:
            self.call("DELETE", f"{self.api}/files/{file_id}", what=what, params={"supportsAllDrives": "true"}).close()
        except DriveNotFound:
            pass

    def close(self) -> None:
        self.session.close()
