"""BigQuery API calls under offsite's error policy, and jobs that run exactly once per id.

- ``mapped_errors`` / ``call``: google.api_core exceptions → TransientError / PermanentError
  carrying BigQuery's reason (403 rateLimitExceeded is transient); transient ones are retried
  through shared.retry, and the client library's own retries are bounded (``api_retry``).
  ``every_api_error=True`` maps every other API error too (a 409, e.g. a load job's
  ``duplicate``, and any 4xx: permanent; 5xx: transient) for callers that handle none raw.
- ``attach_or_start``: a job id is a function of (run_id, source, run folder, step). The job is looked up
  first; one that exists (a redelivery, a concurrent twin) is waited for instead of started
  again. A job that fails for a transient backend reason is followed by ``<id>_retry1``,
  ``<id>_retry2`` (BigQuery never reuses a job id), found the same way later.
- ``wait``: polls until DONE; past the deadline, or once this process has no request thread
  left for the next request (:mod:`shared.in_flight`), raises :class:`JobPending` (a
  TransientError) naming the still-running job. export_table catches it and acknowledges: the job's completion
  event (or the finalize sweep) finishes the export (docs/exports.md).
- ``start_first=False`` (the finalize sweep): attempt 0 is only attached to — when it does not
  exist yet it is ``JobPending`` with state ``MISSING`` (its table-exports message may be in
  flight) — but the successor of an attempt that exists and failed transiently is started: its id
  is fixed, so a concurrent twin's insert gets 409 and re-attaches. ``start=None``: only attach.
- ``before_retry(failed_job)``: called before moving on from a transiently failed attempt to
  its successor (started, or re-attached to), e.g. to remove the failed attempt's files.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from google.api_core import exceptions as gexc

from shared import in_flight, log
from shared.errors import PermanentError, TransientError
from shared.gcp.api_errors import TRANSIENT_API_ERRORS
from shared.retry import retry_call

logger = log.get_logger(__name__)

TRANSIENT_JOB_REASONS = frozenset(
    {"backendError", "internalError", "jobBackendError", "jobInternalError", "rateLimitExceeded"}
)
MAX_JOB_ATTEMPTS = 3
API_DEADLINE_S = 30.0  # bound on the client library's own retries per call (its default is 600 s)
QUERY_TIMEOUT_S = 120.0
_TRANSIENT = TRANSIENT_API_ERRORS


class JobPending(TransientError):
    """The job is not DONE by the deadline (or, when only attaching, does not exist: ``MISSING``)."""

    def __init__(self, job_id: str, state: str, message: str) -> None:
        super().__init__(message, retry_after=30)
        self.job_id = job_id
        self.state = state


def _reason(exc: gexc.GoogleAPICallError) -> str:
    errors = getattr(exc, "errors", None) or []
    return str(errors[0].get("reason", "")) if errors and isinstance(errors[0], dict) else ""


@contextmanager
def mapped_errors(what: str, *, every_api_error: bool = False) -> Iterator[None]:
    """google.api_core exceptions → TransientError / PermanentError carrying BigQuery's reason.
    Others (409 Conflict, ...) pass through raw unless ``every_api_error``: attach_or_start takes a
    409 as "the job exists", the Storage Write API's Aborted (a 409) is transient there."""
    try:
        yield
    except gexc.NotFound as exc:
        raise PermanentError(f"{what}: not found: {exc.message}") from None
    except gexc.Forbidden as exc:
        # BigQuery answers 403 for rate limits too; only those are worth retrying.
        if _reason(exc) in ("rateLimitExceeded", "quotaExceeded"):
            raise TransientError(f"{what}: {_reason(exc)}: {exc.message}", retry_after=30) from exc
        raise PermanentError(f"{what}: access denied: {exc.message}") from None
    except _TRANSIENT as exc:
        raise TransientError(f"{what}: {exc.__class__.__name__}: {exc}") from exc
    except (gexc.BadRequest, gexc.Unauthorized) as exc:
        raise PermanentError(f"{what}: {_reason(exc) or exc.__class__.__name__}: {exc.message}") from None
    except gexc.GoogleAPICallError as exc:
        if not every_api_error:
            raise
        if 400 <= int(exc.code or 0) < 500:  # 409 duplicate (WRITE_EMPTY into a table with rows), 412, ...
            raise PermanentError(f"{what}: {_reason(exc) or exc.__class__.__name__}: {exc.message}") from None
        raise TransientError(f"{what}: {exc.__class__.__name__}: {exc}") from exc


def api_retry() -> Any:
    """The client library's retry, bounded: its default keeps retrying for 600 s (longer than a function runs)."""
    from google.cloud.bigquery import DEFAULT_RETRY

    return DEFAULT_RETRY.with_deadline(API_DEADLINE_S)


def run_query(client: Any, sql: str, *, job_config: Any = None) -> Any:
    """One query job, waited for up to QUERY_TIMEOUT_S (errors unmapped: the caller maps them).
    The library's retries are bounded (:func:`api_retry`) and it never runs the job again
    (``job_retry=None``; by default it re-runs a failed query for up to 2,400 s): a statement
    that applied must not run twice, and the invocation has 540 s."""
    job = client.query(sql, job_config=job_config, retry=api_retry(), job_retry=None)
    job.result(timeout=QUERY_TIMEOUT_S, retry=api_retry(), job_retry=None)
    return job


def call(fn: Callable[[], Any], what: str, *, every_api_error: bool = False) -> Any:
    """``fn()`` with errors mapped (:func:`mapped_errors`); TransientError retried a few times through shared.retry."""

    def once() -> Any:
        with mapped_errors(what, every_api_error=every_api_error):
            return fn()

    return retry_call(once, what, attempts=3)


# ---- jobs ------------------------------------------------------------------------------------


def get_job(client: Any, job_id: str, location: str | None) -> Any | None:
    """The job, or None when BigQuery has none with this id."""

    def lookup() -> Any | None:
        try:
            return client.get_job(job_id, location=location, retry=api_retry())
        except gexc.NotFound:
            return None

    return call(lookup, f"looking up job {job_id}")


def attempt_id(base_id: str, attempt: int) -> str:
    """The id of job ``base_id``'s ``attempt``-th try (0: the first)."""
    return base_id if attempt == 0 else f"{base_id}_retry{attempt}"


def is_retry(job_id: str) -> bool:
    """Whether ``job_id`` is a ``_retryN`` successor (N ≥ 1) of a failed attempt."""
    return re.search(r"_retry[1-9][0-9]*\Z", job_id) is not None


def attach_or_start(
    client: Any,
    base_id: str,
    start: Callable[[str], Any] | None,
    location: str | None,
    deadline: float,
    label: str,
    *,
    start_first: bool = True,
    before_retry: Callable[[Any], None] | None = None,
) -> Any:
    """The finished job ``base_id`` (or its ``_retryN`` successor), started with ``start(job_id)`` only
    if it does not exist yet (``start=None``, or ``start_first=False`` for attempt 0: JobPending(MISSING)
    instead). Waits until ``deadline`` (JobPending past it); a failed job is a PermanentError with
    BigQuery's reason, after up to MAX_JOB_ATTEMPTS for transient reasons (``before_retry(failed)``
    runs before each successor)."""
    for attempt in range(MAX_JOB_ATTEMPTS):
        job_id = attempt_id(base_id, attempt)
        job = (
            _started(client, job_id, start, location, label)
            if start is not None and (start_first or attempt > 0)
            else get_job(client, job_id, location)
        )
        if job is None:
            raise JobPending(job_id, "MISSING", f"BigQuery job {job_id} for {label} does not exist (not started here)")
        job = wait(job, deadline)
        error = job.error_result
        if not error:
            return job
        reason, message = error.get("reason", "unknown"), error.get("message", "")
        if reason in TRANSIENT_JOB_REASONS and attempt + 1 < MAX_JOB_ATTEMPTS:
            successor = attempt_id(base_id, attempt + 1)
            logger.warning("job failed transiently; on to its successor", job_id=job_id, reason=reason, next=successor)
            if before_retry is not None:
                before_retry(job)
            continue
        raise PermanentError(f"BigQuery job {job_id} for {label} failed: {reason}: {message}")
    raise AssertionError("unreachable")  # pragma: no cover


def _started(client: Any, job_id: str, start: Callable[[str], Any], location: str | None, label: str) -> Any:
    """Job ``job_id``, inserted now, or the existing one when BigQuery answers 409 (it ran before,
    or a concurrent delivery started it). Insert first: a new job (the usual case) costs one
    request, not a lookup and an insert."""
    try:
        job = call(functools.partial(start, job_id), f"starting job {job_id} for {label}")
        logger.info("job started", job_id=job_id, source=label)
        return job
    except gexc.Conflict:
        pass
    job = retry_call(
        functools.partial(existing_job, client, job_id, location),
        f"reading job {job_id}",
        attempts=5,
        initial_s=0.2,
        max_wait_s=2.0,
    )
    logger.info("re-attached to existing job", job_id=job_id, state=job.state, source=label)
    return job


def existing_job(client: Any, job_id: str, location: str | None) -> Any:
    """Job ``job_id``, which an insert just answered 409 for (an earlier try of the same insert, or
    a concurrent twin, started it). BigQuery can answer 409 before the job is readable: then a
    TransientError, and a moment later it is."""
    job = get_job(client, job_id, location)
    if job is None:
        raise TransientError(f"job {job_id} exists (409) but cannot be read yet")
    return job


def wait(job: Any, deadline: float) -> Any:
    """Poll until DONE; past ``deadline``, or as soon as every request thread of this process is
    busy (:mod:`shared.in_flight`: a waiting request gives its thread to the next one), raise
    JobPending — the completion event takes over."""
    delay = 0.5
    while True:
        call(lambda: job.reload(retry=api_retry()), f"polling job {job.job_id}")
        if job.state == "DONE":
            return job
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise JobPending(
                str(job.job_id),
                str(job.state),
                f"BigQuery job {job.job_id} is still {job.state} at the end of this attempt's time budget; "
                "its completion event (or the finalize sweep) finishes the export",
            )
        if in_flight.wait_until_full(min(delay, remaining)):
            raise JobPending(
                str(job.job_id),
                str(job.state),
                f"BigQuery job {job.job_id} is still {job.state} and every request thread of this process "
                f"is busy ({in_flight.serving_now()}); its completion event (or the finalize sweep) finishes the export",
            )
        delay = min(delay * 1.5, 10.0)
