"""restore_drill: the restore drill's handler (logic in shared/restore/drill.py)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from shared import log
from shared.config import Config
from shared.events import parse_pubsub
from shared.restore.drill import handle
from shared.restore.drill_records import DrillRequest


def restore_drill(event: Any, config: Config) -> None:
    """restore-drills → one table restored, proven and dropped; the rest of the sample continues."""
    started = time.monotonic()
    message = parse_pubsub(event)
    with log.bind(message_id=message.message_id):
        request = DrillRequest.from_json(message.data)
        handle(config, request, started=started, now=dt.datetime.now(dt.UTC), message_id=message.message_id)
