"""Running one pipeline stage for one event: config, context, logging, and the error policy.

- success → return (HTTP 2xx, the message is acked);
- ``PermanentError`` → logged with the message id, reported on verify-results as
  ``rejected``/``failed`` (:func:`shared.stages.failures.report_failure`), then acked: never
  retried forever, never dropped silently;
- ``TransientError`` or anything unexpected → logged and re-raised (HTTP 500), so Pub/Sub or
  Eventarc redelivers with backoff and, past max attempts, dead-letters it.

Handlers receive the loaded config: ``handler(event, config)``. A function with several
triggers picks its handler by trigger through :func:`dispatch` — by CloudEvent type, and for
Pub/Sub by the topic in the event's source, never by guessing from the payload.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from shared import in_flight, log, retry, topology
from shared.config import Config
from shared.errors import PermanentError, RejectedInput, TransientError
from shared.events import attributes, trigger_name
from shared.ids import Stage
from shared.stages.failures import context_of, report_failure

logger = log.get_logger(__name__)
Handler = Callable[[Any, Config], None]
RETRY_MARGIN_S = 60  # no retry waits into the invocation's last minute (540 s: until 480 s)


def run(stage: Stage, event: Any, handler: Handler) -> None:
    """Run ``handler(event, config)`` under the error policy (module docstring)."""
    attrs = attributes(event)
    event_id = str(attrs.get("id", ""))
    started = time.monotonic()
    # Counted for as long as the platform holds one of this process's request threads for it.
    ends = started + topology.function(str(stage)).timeout_s - RETRY_MARGIN_S
    with (
        in_flight.serving(),
        retry.waits_end_by(ends),
        log.bind(stage=str(stage), event_id=event_id, event_type=str(attrs.get("type", ""))),
    ):
        config: Config | None = None
        try:
            from shared import runtime

            config = runtime.config()
            handler(event, config)
        except PermanentError as exc:
            with log.bind(**_where(exc)):
                logger.error("permanent failure; acknowledging", error=str(exc), status=exc.status)
                report_failure(stage, exc, message_id=event_id)
            return
        except TransientError as exc:
            with log.bind(**_where(exc)):
                logger.warning("transient failure; will be retried", error=str(exc), retry_after=exc.retry_after)
                _remember(stage, event, exc, config)
            raise
        except Exception as exc:
            with log.bind(**_where(exc)):
                logger.exception("unexpected failure; will be retried")
                _remember(stage, event, exc, config)
            raise
        logger.info("stage done", duration_s=round(time.monotonic() - started, 3))


def dispatch(routes: Mapping[str, Handler]) -> Handler:
    """One handler over several triggers: ``routes`` maps a trigger name (a topic, or
    ``gcs-finalized``; see :func:`shared.events.trigger_name`) to its handler."""

    def handle(event: Any, config: Config) -> None:
        name = trigger_name(event)
        route = routes.get(name)
        if route is None:
            raise RejectedInput(f"event from {name!r} is not handled here (expected one of {', '.join(routes)})")
        route(event, config)

    return handle


def _where(exc: BaseException) -> dict[str, Any]:
    """The run, table and destination an error carries out of the handler's ``log.bind``, which
    has exited by the time the error is logged here."""
    carried = context_of(exc)
    return {key: carried[key] for key in log.CONTEXT_KEYS if key in carried}


def _remember(stage: Stage, event: Any, exc: BaseException, config: Config | None) -> None:
    """Keep the error for the ``failed`` result the event gets if it is dead-lettered."""
    from shared.reporting import last_errors

    key = last_errors.key_for_event(event)
    if config is not None and key is not None:
        last_errors.record(config.state_bucket_name, key, str(stage), exc)
