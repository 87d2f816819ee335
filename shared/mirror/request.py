"""``mirror-reconciles``: reconcile (and verify) one mirrored bucket (docs/mirror.md).

Cloud Scheduler publishes ``{"bucket": NAME}`` on each entry's ``schedule``;
``offsite mirror reconcile NAME`` publishes the same, ``--check-only`` adds ``"fix": false``
(compare and report, change nothing). It and ``POST /mirror/<bucket>`` add a ``request_id``,
which each destination's result carries back, so the caller waits for its own reconcile's
outcome and not for a scheduled one reported meanwhile.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import StrictBool

from shared.ids import DestinationId
from shared.message_fields import RunId
from shared.messages import Message


class MirrorRequest(Message):
    """Compare a mirrored bucket with its destinations, report, and (``fix``) repair the difference."""

    KIND: ClassVar[str] = "mirror request"
    bucket: str
    destination: DestinationId | None = None
    fix: StrictBool = True  # "yes" or 1 is refused, not read as true
    request_id: RunId | None = None
    """Who asked (the caller's id; shaped like a run id): copied into each destination's result,
    also when the request is handed on per destination, fails or is dead-lettered."""
