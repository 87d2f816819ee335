"""Pull what a subscription holds now, without a long poll.

A pull without ``return_immediately`` is a long poll: the Pub/Sub emulator keeps it open for
about 90 s even after the client gave up (its timeout), and hands it the next message, which
then waits out the subscription's whole ack deadline before anyone else gets it. A test that
polls with short timeouts would lose seconds to a minute per message that way.
"""

from __future__ import annotations

import warnings
from typing import Any

from shared.gcp import clients


def pull_now(subscription: str, max_messages: int = 100) -> list[Any]:
    """The messages waiting on ``subscription`` (a full path), unacknowledged; none if none wait."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # return_immediately: deprecated in the cloud
        request = {"subscription": subscription, "max_messages": max_messages, "return_immediately": True}
        return list(clients.subscriber_client().pull(request=request, timeout=30).received_messages)
