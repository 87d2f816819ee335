"""collect_list and collect_copy: the collect pipeline's handlers (logic in shared/collect).

The run id is the request's ``run_id``, else derived from the Pub/Sub message id and publish
time (as for exports), so a redelivered request repeats the same run; the scheduled day is
the publish time's date in the job's time zone (its business calendar decides on it).
"""

from __future__ import annotations

from typing import Any

from shared import log
from shared.collect.copy import copy_file
from shared.collect.listing import job_named, list_and_fan_out
from shared.collect.messages import CollectFile, CollectRequest
from shared.collect.runs import record_listing_failure
from shared.config import Config
from shared.errors import PermanentError
from shared.events import parse_pubsub
from shared.ids import Status
from shared.stages.fan_out import derive_run_id, scheduled_date


def collect_list(event: Any, config: Config) -> None:
    """collect-requests → one collect-files message per new, stable file."""
    message = parse_pubsub(event)
    with log.bind(message_id=message.message_id):
        request = CollectRequest.from_json(message.data)
        job = job_named(config, request.collect)
        run_id = request.run_id or derive_run_id(message.message_id, message.publish_time)
        with log.bind(run_id=run_id, collect=job.name):
            day = scheduled_date(message.first_published, job.time_zone)
            try:
                list_and_fan_out(config, request, run_id=run_id, day=day)
            except PermanentError as exc:  # reported by the runner; the job's freshness says so too
                record_listing_failure(config, job.name, run_id, Status(exc.status), str(exc))
                raise


def collect_copy(event: Any, config: Config) -> None:
    """collect-files → the file at every destination, verified, then the post-action."""
    message = parse_pubsub(event)
    with log.bind(message_id=message.message_id):
        copy_file(config, CollectFile.from_json(message.data))
