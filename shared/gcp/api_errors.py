"""Google API failures worth retrying, shared by the GCS and BigQuery wrappers."""

from __future__ import annotations

from google.api_core import exceptions as gexc

TRANSIENT_API_ERRORS: tuple[type[BaseException], ...] = (
    gexc.TooManyRequests,
    gexc.InternalServerError,
    gexc.BadGateway,
    gexc.ServiceUnavailable,
    gexc.GatewayTimeout,
    gexc.DeadlineExceeded,
    gexc.RetryError,
    ConnectionError,
    TimeoutError,
)
