"""Forwarding to bqemulator: method, path, query string, headers and body unchanged.

The upstream's answer is streamed back as it comes (status, headers, raw body bytes, so a
gzip-encoded answer stays encoded). If bqemulator does not answer, the caller gets a 502 with
a BigQuery-shaped error body (reason ``backendError``), which google-cloud-bigquery retries.
"""

from __future__ import annotations

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from devstack.bqfront.errors import JobFailure, error_body

_HOP = {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "upgrade", "te", "trailer"}


class Upstream:
    """An httpx client for bqemulator's REST port."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = httpx.AsyncClient(base_url=self.base_url, timeout=httpx.Timeout(None, connect=10.0))

    async def close(self) -> None:
        await self.client.aclose()

    def _outgoing(self, request: Request, body: bytes) -> httpx.Request:
        headers = [(k, v) for k, v in request.headers.raw if k.decode("latin-1").lower() not in _HOP]
        url = httpx.URL(path=request.url.path, query=request.url.query.encode("latin-1"))
        return self.client.build_request(request.method, url, headers=headers, content=body)

    async def forward(self, request: Request, body: bytes) -> Response:
        """``request`` sent to bqemulator as is; its answer streamed back."""
        try:
            answer = await self.client.send(self._outgoing(request, body), stream=True)
        except httpx.HTTPError as exc:
            return _unanswered(exc)
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP - {"content-length"}}
        return StreamingResponse(
            answer.aiter_raw(), status_code=answer.status_code, headers=kept, background=BackgroundTask(answer.aclose)
        )

    async def forward_read(self, request: Request, body: bytes) -> tuple[Response, bytes | None]:
        """``forward``, the answer read whole (and decoded) first; also its body, None when
        bqemulator did not answer. For small answers the front looks into (a job's resource)."""
        try:
            answer = await self.client.send(self._outgoing(request, body))
        except httpx.HTTPError as exc:
            return _unanswered(exc), None
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP | {"content-encoding"}}
        return Response(answer.content, status_code=answer.status_code, headers=kept), answer.content

    async def has_job(self, project: str, job_id: str) -> bool:
        """Whether bqemulator knows a job with this id (any location)."""
        try:
            answer = await self.client.get(f"/bigquery/v2/projects/{project}/jobs/{job_id}")
        except httpx.HTTPError:
            return False
        return answer.status_code == 200


def _unanswered(exc: httpx.HTTPError) -> Response:
    failure = JobFailure("backendError", f"bqemulator did not answer: {exc.__class__.__name__}: {exc}")
    return JSONResponse(error_body(failure), status_code=502)
