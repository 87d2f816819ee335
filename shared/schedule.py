"""Every Cloud Scheduler job the config makes, and when each fires next.

The same list infra/ derives from the config (infra/config.tf ``scheduler_jobs``, infra/ingest.tf,
infra/mirror.tf ``mirror_jobs``), for ``offsite schedule``: the job's name, cron, time zone,
topic and message. tests/infra/test_schedule.py holds the two to each other, so an operator
reading ``offsite schedule`` sees what ``terraform apply`` creates.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

from shared.config import Config
from shared.config.collect import BusinessCalendar
from shared.topology import (
    COLLECT_REQUESTS,
    EXPORT_REQUESTS,
    EXPORT_SWEEPS,
    INGEST_REQUESTS,
    MIRROR_RECONCILES,
    RESTORE_DRILLS,
    VERIFY_REQUESTS,
)

MAX_DAYS_AHEAD = 400  # how far next_fire looks for a business day
EXPORT_FINALIZE_SWEEP = "*/15 * * * *"  # infra/config.tf's offsite-export-finalize-sweep


@dataclass(frozen=True)
class ScheduledJob:
    name: str
    schedule: str
    time_zone: str
    topic: str
    message: dict[str, Any]
    what: str
    calendar: BusinessCalendar | None = None  # collect: scheduled runs on other days copy nothing

    def next_fire(self, now: dt.datetime) -> dt.datetime | None:
        return next_fire(self.schedule, self.time_zone, now, self.calendar)

    def as_dict(self, now: dt.datetime) -> dict[str, Any]:
        upcoming = self.next_fire(now)
        return {
            "job": self.name,
            "schedule": self.schedule,
            "time_zone": self.time_zone,
            "topic": self.topic,
            "message": json.dumps(self.message, separators=(",", ":")),
            "what": self.what,
            "next_run": upcoming.isoformat() if upcoming else None,
        }


def next_fire(
    schedule: str, time_zone: str, now: dt.datetime, calendar: BusinessCalendar | None = None
) -> dt.datetime | None:
    """The next time ``schedule`` fires after ``now``, in ``time_zone``; with a ``calendar``, the
    next on one of its business days (None when there is none within MAX_DAYS_AHEAD)."""
    it = croniter(schedule, now.astimezone(ZoneInfo(time_zone)))
    for _ in range(MAX_DAYS_AHEAD * 24):
        when: dt.datetime = it.get_next(dt.datetime)
        if calendar is None or calendar.skip_reason(when.date()) is None:
            return when
        if (when - now).days > MAX_DAYS_AHEAD:
            break
    return None


def scheduled_jobs(config: Config) -> list[ScheduledJob]:
    """Every Cloud Scheduler job of ``config``, by name."""
    d, e, c, b = config.datasets, config.exports, config.collect.jobs, config.buckets
    each = [
        *(
            _timed(f"offsite-dataset-{x.name}", x, EXPORT_REQUESTS, {"dataset": x.name}, f"export dataset {x.name}")
            for x in d
        ),
        *(
            _timed(f"offsite-export-{x.name}", x, EXPORT_REQUESTS, {"export": x.name}, f"query export {x.name}")
            for x in e
        ),
        *(
            _timed(
                f"offsite-collect-{x.name}", x, COLLECT_REQUESTS, {"collect": x.name}, f"collect {x.name}", x.calendar
            )
            for x in c
        ),
        *(
            _timed(
                f"offsite-restore-drill-{x.name}", x.restore_drill, RESTORE_DRILLS, {"dataset": x.name}, "restore drill"
            )
            for x in d
        ),
        *(
            _timed(
                f"offsite-mirror-{x.name}".replace(".", "-"),
                x,
                MIRROR_RECONCILES,
                {"bucket": x.name},
                "mirror reconcile",
            )
            for x in b
        ),
    ]
    jobs = [job for job in each if job is not None]
    jobs += _ingest_jobs(config)
    jobs += [
        ScheduledJob(
            "offsite-verify-sweep",
            config.verify.sweep_schedule,
            "UTC",
            VERIFY_REQUESTS,
            {"sweep": True},
            "verify sweep",
        ),
        ScheduledJob(
            "offsite-export-finalize-sweep",
            EXPORT_FINALIZE_SWEEP,
            "UTC",
            EXPORT_SWEEPS,
            {"sweep": True},
            "export finalize sweep",
        ),
    ]
    return sorted(jobs, key=lambda j: j.name)


def _timed(
    name: str, entry: Any, topic: str, message: dict[str, Any], what: str, calendar: BusinessCalendar | None = None
) -> ScheduledJob | None:
    """The job of a config entry with a ``schedule`` and ``time_zone``; None when it has no schedule
    (or no entry: a dataset without a restore drill)."""
    schedule = getattr(entry, "schedule", None)
    return ScheduledJob(name, schedule, entry.time_zone, topic, message, what, calendar) if schedule else None


def _ingest_jobs(config: Config) -> list[ScheduledJob]:
    ingest = config.ingest
    if ingest is None:
        return []
    jobs = []
    if ingest.schedule:
        jobs.append(
            ScheduledJob(
                "offsite-ingest-incremental",
                ingest.schedule,
                ingest.time_zone,
                INGEST_REQUESTS,
                {},
                "incremental ingest",
            )
        )
    if ingest.full_schedule:
        jobs.append(
            ScheduledJob(
                "offsite-ingest-full",
                ingest.full_schedule,
                ingest.time_zone,
                INGEST_REQUESTS,
                {"full": True},
                "full ingest",
            )
        )
    return jobs
