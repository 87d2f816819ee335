"""Reporting a VerifyResult: the one entry point for every stage's outcome.

:func:`report` publishes the result on ``verify-results`` (a failure there raises: the caller
decides), then, best effort, appends it to the run history (:mod:`shared.reporting.history`) and
sends a Slack alert when the status needs a person (:mod:`shared.reporting.alerts`). History and alert
failures are logged, never raised: they must not make a stage retry.
"""

from __future__ import annotations

import datetime as dt

from shared import log
from shared.config import Config
from shared.gcp import pubsub
from shared.messages import VerifyResult
from shared.topology import VERIFY_RESULTS

logger = log.get_logger(__name__)


def report(result: VerifyResult, *, config: Config | None = None) -> str:
    """Publish ``result`` on verify-results, record it, alert on it; returns the message id."""
    now = dt.datetime.now(dt.UTC)
    if result.finished_at is None:
        result = result.model_copy(update={"finished_at": now.isoformat()})
    message_id = pubsub.publish(VERIFY_RESULTS, result, status=result.status)
    logger.info(
        "result published",
        status=result.status,
        run_id=result.run_id,
        destination=result.destination,
        check=result.check,
        reason=result.reason,
    )
    config = config or _config()
    if config is None:
        return message_id
    _record(config, result, now)
    from shared.reporting.alerts import alert

    alert(result, config)
    return message_id


def _config() -> Config | None:
    from shared.runtime import config

    try:
        return config()
    except Exception as exc:  # noqa: BLE001 - without config there is no history or alert; the result is out
        logger.error("no config: result not recorded in history, no alert", error=str(exc))
        return None


def _record(config: Config, result: VerifyResult, now: dt.datetime) -> None:
    from shared.reporting.history import record

    try:
        record(config.state_bucket_name, result, now)
    except Exception as exc:  # noqa: BLE001 - see module docstring
        logger.error("could not record result in the run history", error=str(exc), run_id=result.run_id)
