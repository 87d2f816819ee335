"""HTTP to the Box API: one pooled session, one error policy, retries through shared.retry.

box-sdk-gen's managers retry inside themselves (5 attempts) and cannot send parts in
parallel or poll a 202 commit, so every API call offsite makes goes through here:

- 2xx/3xx → the response; a caller that says which statuses are the answer (``expect``, e.g.
  a download: 200/206) gets any other one (a download's 202 "not ready yet") as a
  ``TransientError`` carrying ``Retry-After``, so the retry asks again after that delay;
- 401 → the token is refreshed once (one owner, see :mod:`shared.destinations.box.auth`) and the request
  sent again; a second 401 is a ``PermanentError``;
- 429 and 5xx, connection errors, timeouts → ``TransientError`` carrying ``Retry-After``;
- other 4xx → :class:`BoxApiError` (a ``PermanentError``) with Box's ``code`` and
  ``context_info``, which callers inspect for 409 ``item_name_in_use``; a 403 names its cause
  when Box's code tells it (access, a locked item, the file size limit, ...).

A request that creates a file (an upload, a session's commit) and fails after it may have
reached Box (a dropped connection, a timeout, a 5xx) is noted in the caller's
:class:`WriteJournal` (:func:`write_journal`): when the retry then finds the file already
there with the same bytes, the put knows they may be its own.

Bodies are bytes (never one-shot streams), so every request can be retried as sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
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
# Why a 403 happened, by Box's code (developer.box.com/guides/api-calls/permissions-and-errors/common-errors).
FORBIDDEN_HINTS = {
    "access_denied_insufficient_permissions": "the Box app's service account lacks access: collaborate it as an "
    "editor on the root folder (destinations.box.root_folder_id)",
    "insufficient_scope": "the Box app lacks a scope: enable 'Write all files and folders stored in Box' in the "
    "Developer Console and have an admin reauthorize the app",
    "access_denied_item_locked": "the item is locked in Box: unlock it",
    "file_size_limit_exceeded": "the file is over the Box account's upload size limit (it depends on the account "
    "type; the service account's is max_upload_size on GET /users/me)",
    "storage_limit_exceeded": "the Box account's storage is full: delete files permanently or upgrade the account",
    "forbidden_by_policy": "a Box Shield policy of the enterprise blocks it: ask the Box admin",
}


class WriteJournal:
    """Whether a file-creating request of one put failed after it may have reached Box."""

    def __init__(self) -> None:
        self.maybe_stored = False


_journal: ContextVar[WriteJournal | None] = ContextVar("box_write_journal", default=None)


@contextmanager
def write_journal() -> Iterator[WriteJournal]:
    """Note which file-creating requests sent in this block (this context) may have reached Box unanswered."""
    journal = WriteJournal()
    token = _journal.set(journal)
    try:
        yield journal
    finally:
        _journal.reset(token)


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


@dataclass(frozen=True)
class _Request:
    """One request as ``send`` was asked it: sent again as it was after a token refresh."""

    method: str
    url: str
    what: str  # what the request does, for errors: "listing folder 123"
    headers: dict[str, str] | None
    stream: bool
    kwargs: dict[str, Any]


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
        expect: tuple[int, ...] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """One request (sent twice only when a 401 made us refresh the token). With ``expect``,
        an answer below 400 that is not one of those statuses is a TransientError (not ready)."""
        try:
            response = self._authorized(_Request(method, url, what, headers, stream, kwargs))
        except TransientError:
            _note_uncertain_write(method, url)
            raise
        if response.status_code == 202 or response.status_code >= 500:
            _note_uncertain_write(method, url)  # accepted (a commit still assembling), or failed midway
        if response.status_code < 400:
            if expect is None or response.status_code in expect:
                return response
            raise _not_ready(response, what)
        raise _error(response, what)

    def _authorized(self, request: _Request) -> requests.Response:
        """The answer to the request, after refreshing the token once on a 401."""
        header = self.auth.header()
        response = self._once(request, header)
        if response.status_code == 401:
            response.close()
            header = self.auth.refresh(header)
            response = self._once(request, header)
            if response.status_code == 401:
                response.close()
                raise PermanentError(
                    f"Box rejected a freshly issued token (HTTP 401) for {request.what}; check that the app "
                    f"(destinations.box.auth, method {self.auth.method!r}) is authorized in the Box Admin Console"
                )
        return response

    def _once(self, request: _Request, authorization: str) -> requests.Response:
        uploads = self._pace(request.method, request.url)
        headers = {"Authorization": authorization, **(request.headers or {})}
        timeout = self.upload_timeout if uploads else self.timeout
        try:
            return self.session.request(
                request.method, request.url, headers=headers, timeout=timeout, stream=request.stream, **request.kwargs
            )
        except requests.RequestException as exc:
            raise request_failed(request.what, exc, "Box", "destinations.box") from None

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


def _note_uncertain_write(method: str, url: str) -> None:
    """An upload or commit got no clear answer (no answer, 5xx, 202): Box may store the file anyway."""
    journal = _journal.get()
    if journal is not None and method == "POST" and url.split("?", 1)[0].endswith(("/content", "/commit")):
        journal.maybe_stored = True


def _not_ready(response: requests.Response, what: str) -> TransientError:
    """A 2xx/3xx that is not the answer: Box's 202 + Retry-After ("file not ready", just uploaded)."""
    status = response.status_code
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    response.close()
    return TransientError(
        f"{what}: Box answered HTTP {status}, not the content (not ready yet)", retry_after=retry_after
    )


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
    if status == 403 and code in FORBIDDEN_HINTS:
        text += f"; {FORBIDDEN_HINTS[code]}"
    return BoxApiError(text, http_status=status, code=code, context_info=body.get("context_info"))
