"""HTTP to the Box API: one pooled session, one error policy, retries through shared.retry.

box-sdk-gen's managers retry inside themselves (5 attempts) and cannot send parts in
parallel or poll a 202 commit, so every API call offsite makes goes through here:

- 2xx/3xx → the response;
- 401 → the token is refreshed once (one owner, see :mod:`shared.destinations.box.auth`) and the request
  sent again; a second 401 is a ``PermanentError``;
- 429 and 5xx, connection errors, timeouts → ``TransientError`` carrying ``Retry-After``;
- other 4xx → :class:`BoxApiError` (a ``PermanentError``) with Box's ``code`` and
  ``context_info``, which callers inspect for 409 ``item_name_in_use``.

Bodies are bytes (never one-shot streams), so every request can be retried as sent.
"""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter

from shared.config import BoxDestination
from shared.destinations.box.auth import BoxAuthenticator
from shared.destinations.box.pacing import pacers
from shared.destinations.request_failures import request_failed
from shared.errors import PermanentError, TransientError
from shared.retry import parse_retry_after, retry_call

# Enough attempts to ride out a rate-limit storm in-process; past them the stage fails and
# the event is redelivered, which is safe because every step is idempotent.
ATTEMPTS = 10
MAX_WAIT_S = 20.0
CONNECT_TIMEOUT_S = 10.0


class BoxApiError(PermanentError):
    """A 4xx answer from Box other than 401/429, with Box's error fields."""

    def __init__(
        self, message: str, *, http_status: int, code: str | None, context_info: dict[str, Any] | None
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code
        self.context_info = context_info or {}

    def conflicts(self) -> list[dict[str, Any]]:
        """``context_info.conflicts`` as a list (Box sends a list for folders, an object for files)."""
        found = self.context_info.get("conflicts")
        if isinstance(found, dict):
            return [found]
        if isinstance(found, list):
            return [c for c in found if isinstance(c, dict)]
        return []


class BoxHttp:
    """Requests to one Box API (``base_url``/``upload_url`` from config) as one authenticated user."""

    def __init__(self, box: BoxDestination, auth: BoxAuthenticator | None = None) -> None:
        self.box = box
        self.api = box.base_url.rstrip("/") + "/2.0"
        self.upload = box.upload_url.rstrip("/") + "/2.0"
        self.auth = auth or BoxAuthenticator(box)
        self.calls_pacer, self.uploads_pacer = pacers(box)
        self.timeout = (CONNECT_TIMEOUT_S, box.timeout_s)
        # requests sends a body under the *connect* timeout: an upload whose send stalls for 10 s
        # on a slow partner link would fail and be sent again. Uploads wait the request timeout.
        self.upload_timeout = (box.timeout_s, box.timeout_s)
        self.session = requests.Session()
        # Parallel parts each hold a connection; keep them alive between parts.
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(8, box.parallel_parts * 2))
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def close(self) -> None:
        self.session.close()

    def call(self, method: str, url: str, *, what: str, attempts: int = ATTEMPTS, **kwargs: Any) -> requests.Response:
        """``send`` with retries of transient failures (honouring Retry-After)."""
        return retry_call(
            lambda: self.send(method, url, what=what, **kwargs), what, attempts=attempts, max_wait_s=MAX_WAIT_S
        )

    def send(
        self,
        method: str,
        url: str,
        *,
        what: str,
        headers: dict[str, str] | None = None,
        stream: bool = False,
        **kwargs: Any,
    ) -> requests.Response:
        """One request (sent twice only when a 401 made us refresh the token)."""
        header = self.auth.header()
        response = self._once(method, url, what, header, headers, stream, kwargs)
        if response.status_code == 401:
            response.close()
            header = self.auth.refresh(header)
            response = self._once(method, url, what, header, headers, stream, kwargs)
            if response.status_code == 401:
                response.close()
                raise PermanentError(
                    f"Box rejected a freshly issued token (HTTP 401) for {what}; check that the app "
                    f"(destinations.box.auth, method {self.auth.method!r}) is authorized in the Box Admin Console"
                )
        if response.status_code < 400:
            return response
        raise _error(response, what)

    def _once(
        self,
        method: str,
        url: str,
        what: str,
        authorization: str,
        headers: dict[str, str] | None,
        stream: bool,
        kwargs: dict[str, Any],
    ) -> requests.Response:
        uploads = self._pace(method, url)
        all_headers = {"Authorization": authorization, **(headers or {})}
        timeout = self.upload_timeout if uploads else self.timeout
        try:
            return self.session.request(method, url, headers=all_headers, timeout=timeout, stream=stream, **kwargs)
        except requests.RequestException as exc:
            raise request_failed(what, exc, "Box", "destinations.box") from None

    def _pace(self, method: str, url: str) -> bool:
        """Wait for this instance's share of Box's rate limits (shared.destinations.box.pacing);
        True for an upload (a request that carries file content)."""
        if self.calls_pacer is not None:
            self.calls_pacer.acquire()
        uploads = _carries_content(method, url, self.upload)
        if self.uploads_pacer is not None and uploads:
            self.uploads_pacer.acquire()
        return uploads


def _carries_content(method: str, url: str, upload_base: str) -> bool:
    """A whole-file upload or an upload-session part (what Box counts as uploads, read strictly)."""
    if not url.startswith(upload_base):
        return False
    return (method == "POST" and url.endswith("/content")) or (method == "PUT" and "/upload_sessions/" in url)


def _error(response: requests.Response, what: str) -> Exception:
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = {}
    finally:
        response.close()
    if not isinstance(body, dict):
        body = {}
    code = body.get("code")
    message = body.get("message") or response.reason or ""
    request_id = body.get("request_id")
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    # operation_blocked_temporary: Box is busy with another change in the same folder.
    if status == 429 or status >= 500 or code == "operation_blocked_temporary":
        return TransientError(f"{what}: Box answered HTTP {status} {code or ''}".rstrip(), retry_after=retry_after)
    text = f"{what}: Box answered HTTP {status} {code or ''}: {message}"
    if request_id:
        text += f" (request id {request_id})"
    if status == 403:
        text += "; the Box app or its service account lacks access (collaborate it on the root folder)"
    return BoxApiError(text, http_status=status, code=code, context_info=body.get("context_info"))
