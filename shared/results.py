"""Reporting a VerifyResult: publish on verify-results (alerts and the run log hook in here)."""

from __future__ import annotations

from shared import log
from shared.gcp import pubsub
from shared.messages import VerifyResult
from shared.topology import VERIFY_RESULTS

logger = log.get_logger(__name__)


def report(result: VerifyResult) -> str:
    """Publish ``result`` on verify-results and return the message id."""
    message_id = pubsub.publish(VERIFY_RESULTS, result, status=result.status)
    logger.info("result published", status=result.status, run_id=result.run_id, destination=result.destination)
    return message_id
