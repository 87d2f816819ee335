"""Running one pipeline stage for one event: context, logging, and the error policy.

- success → return (HTTP 2xx, the message is acked);
- ``PermanentError`` → logged with the message id, reported on verify-results as
  ``rejected``/``failed``, then acked: never retried forever, never dropped silently;
- ``TransientError`` or anything unexpected → logged and re-raised (HTTP 500), so Pub/Sub or
  Eventarc redelivers with backoff and, past max attempts, dead-letters it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from shared import log
from shared.errors import PermanentError, TransientError
from shared.events import event_type

logger = log.get_logger(__name__)


def run(stage: str, event: Any, handler: Callable[[Any], None]) -> None:
    attrs = event if isinstance(event, dict) else event.get_attributes()
    event_id = str(attrs.get("id", ""))
    started = time.monotonic()
    with log.bind(stage=stage, event_id=event_id, event_type=event_type(event)):
        try:
            handler(event)
        except PermanentError as exc:
            context = getattr(exc, "context", {}) or {}
            logger.error(
                "permanent failure; acknowledging", error=str(exc), status=exc.status, **_context_fields(context)
            )
            _report(stage, event_id, exc, context)
            return
        except TransientError as exc:
            logger.warning("transient failure; will be retried", error=str(exc), retry_after=exc.retry_after)
            raise
        except Exception:
            logger.exception("unexpected failure; will be retried")
            raise
        logger.info("stage done", duration_s=round(time.monotonic() - started, 3))


def _context_fields(context: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in context.items() if k in ("run_id", "table", "destination", "message_id")}


def _report(stage: str, event_id: str, exc: PermanentError, context: dict[str, Any]) -> None:
    """Publish the rejected/failed result; a failure to report is logged, not raised (no retry loop)."""
    from shared.messages import VerifyResult
    from shared.reporting.results import report

    result = VerifyResult(
        status=exc.status,
        stage=stage,
        reason=str(exc),
        message_id=str(context.get("message_id") or event_id),
        run_id=context.get("run_id"),
        destination=context.get("destination"),
        source=context.get("source"),
    )
    try:
        report(result)
    except Exception as report_exc:  # noqa: BLE001 - reporting must never turn a permanent failure into a retry storm
        logger.error("could not report failure", error=str(report_exc), original=str(exc))
