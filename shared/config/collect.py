"""Collect jobs: files taken from a partner's SFTP server into destinations (docs/collect.md).

``collect.partners`` are SFTP servers offsite reads from, with the same keys (and the same
connection code, host-key pinning, key or password auth) as ``destinations.sftp``; a partner
may also be named from ``destinations.sftp``. ``collect.jobs`` say what to take from where.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import BaseModel, Field, field_validator, model_validator

from shared.config.types import PARTNER_RE, Cron, Model, Names, Routes, TimeZone, check_partner_names, matching
from shared.validation import Problem, Problems

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PostAction = Literal["keep", "move", "delete"]
MAX_DEPTH = 10
"""Default ``max_depth`` of a recursive job."""
Partner = TypeVar("Partner", bound=BaseModel)
"""The SFTP partner model (``shared.config.destinations.SftpPartner``)."""


class BusinessCalendar(Model):
    weekdays: Names = Field(
        ("mon", "tue", "wed", "thu", "fri"), description="Days a scheduled run collects: mon … sun."
    )
    holidays: tuple[dt.date, ...] = Field((), description="Dates (YYYY-MM-DD) a scheduled run skips.")

    @field_validator("weekdays")
    @classmethod
    def _days(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        problems = Problems()
        for i, day in enumerate(value):
            if day not in WEEKDAYS:
                problems.add((i,), f"{day!r} is not a weekday (expected one of {', '.join(WEEKDAYS)})")
        problems.raise_any()
        return value

    def skip_reason(self, day: dt.date) -> str | None:
        """Why ``day`` is not a business day, or None when it is one."""
        if day in self.holidays:
            return f"{day.isoformat()} is a holiday"
        if WEEKDAYS[day.weekday()] not in self.weekdays:
            return f"{day.isoformat()} is a {day.strftime('%A')}, not a business day"
        return None


class CollectJob(Model):
    name: Annotated[str, matching(PARTNER_RE, "must be lower-case letters, digits, '-' or '_'")] = Field(
        description='Job name used in requests: {"collect": NAME}.'
    )
    partner: str = Field(description="SFTP partner to read from: a key of collect.partners or destinations.sftp.")
    directory: str = Field(description="Absolute remote directory whose files are collected.")
    recursive: bool = Field(
        False, description="Also collect files in subfolders (symlinks not followed), keeping their relative path."
    )
    max_depth: int = Field(
        MAX_DEPTH, ge=1, le=100, description="With recursive: how many folder levels below directory are entered."
    )
    include: Names = Field(("*",), description="Glob patterns of the path relative to directory to take.")
    exclude: Names = Field((), description="Glob patterns of relative paths never taken (wins over include).")
    min_age_minutes: int = Field(
        0, ge=0, description="Only files whose mtime is at least this old (a file still being written is not taken)."
    )
    destinations: Routes = Field(description="Where files go: 'box', 'sftp:PARTNER', 'drive:NAME', 'memory'.")
    folder: str = Field(
        "", description="Folder under each destination's root; default collect/{name}; '/' for the root itself."
    )
    schedule: Cron | None = Field(None, description="Cron expression for Cloud Scheduler, e.g. '0 6 * * *'.")
    time_zone: TimeZone = Field("UTC", description="Time zone of the schedule and of the business-day calendar.")
    calendar: BusinessCalendar = Field(
        default_factory=BusinessCalendar, description="Business days: scheduled runs on other days are skipped."
    )
    post_action: PostAction = Field(
        "keep", description="After every destination holds a verified copy: keep, move (to processed_dir), delete."
    )
    processed_dir: str | None = Field(
        None, description="Absolute remote directory files are moved to (post_action: move)."
    )

    @field_validator("directory", "processed_dir")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise Problem(f"{value!r} must be an absolute path")
        return value.rstrip("/") or "/" if value is not None else None

    @field_validator("destinations")
    @classmethod
    def _some(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise Problem("at least one destination is required")
        return value

    @model_validator(mode="after")
    def _processed_dir(self) -> CollectJob:
        if self.post_action == "move" and self.processed_dir is None:
            raise Problem("required when post_action is 'move'", ("processed_dir",))
        if self.processed_dir is not None and self.processed_dir == self.directory:
            raise Problem(f"{self.processed_dir!r} is the collected directory itself", ("processed_dir",))
        if (
            self.recursive
            and self.processed_dir is not None
            and self.processed_dir.startswith(self.directory.rstrip("/") + "/")
        ):
            raise Problem(
                f"{self.processed_dir!r} is inside the collected directory {self.directory!r}, which is collected "
                "recursively: moved files would be collected again; choose a folder outside it",
                ("processed_dir",),
            )
        if not self.recursive and self.max_depth != MAX_DEPTH:  # not model_fields_set: dumped configs reload
            raise Problem(
                "only applies with recursive: true (the job collects only its directory's own files)", ("max_depth",)
            )
        return self

    @property
    def target_folder(self) -> str:
        """Folder under each destination's root the files go to ('' for the root itself, as an
        app reading one Drive folder expects its files)."""
        if self.folder.strip() == "/":
            return ""
        return self.folder.strip("/") or f"collect/{self.name}"

    def target_path(self, file_name: str) -> str:
        """Where ``file_name`` (relative to ``directory``) goes at each destination."""
        return f"{self.target_folder}/{file_name}" if self.target_folder else file_name

    def wants(self, file_name: str) -> bool:
        """True when ``file_name`` (the path relative to ``directory``: ``a.csv``, ``sub/a.csv``)
        matches an include pattern and no exclude pattern; fnmatch's ``*`` also matches ``/``."""
        return any(fnmatch.fnmatchcase(file_name, p) for p in self.include) and not any(
            fnmatch.fnmatchcase(file_name, p) for p in self.exclude
        )


class CollectSettings(Model, Generic[Partner]):
    partners: dict[str, Partner] = Field(default_factory=dict, description="SFTP servers collected from, by name.")
    jobs: tuple[CollectJob, ...] = Field((), description="Collect jobs.")
    lease_minutes: int = Field(
        30, ge=1, description="How long one copy of a file holds its claim before another may take it over."
    )

    @field_validator("partners")
    @classmethod
    def _partner_names(cls, value: dict[str, Partner]) -> dict[str, Partner]:
        check_partner_names(value)
        return value

    def job(self, name: str) -> CollectJob | None:
        return next((j for j in self.jobs if j.name == name), None)


LEASE_MARGIN_S = 60
"""Time past ``delivery.budget_s`` a copy may take to finish its last chunk and checkpoint."""


def collect_problems(
    settings: CollectSettings[Partner],
    sftp_destinations: dict[str, Partner],
    known: tuple[str, ...],
    budget_s: float | None = None,
) -> Problems:
    """Cross-section checks of ``collect`` (called by Config's model validator): unique job names,
    partners that exist, destinations that are configured, and a claim lease longer than one
    invocation's copy (``delivery.budget_s``, when given) plus a minute to finish it."""
    problems = Problems()
    if settings.jobs and budget_s is not None and settings.lease_minutes * 60 < budget_s + LEASE_MARGIN_S:
        least = -(-int(budget_s + LEASE_MARGIN_S) // 60)
        problems.add(
            ("collect", "lease_minutes"),
            f"{settings.lease_minutes} is shorter than one invocation's copy (delivery.budget_s {budget_s:g} s "
            f"plus {LEASE_MARGIN_S} s to finish it): another run could take over a copy still running; "
            f"expected at least {least}",
        )
    seen: set[str] = set()
    for i, job in enumerate(settings.jobs):
        at = ("collect", "jobs", i)
        if job.name in seen:
            problems.add((*at, "name"), f"{job.name!r} is listed twice")
        seen.add(job.name)
        if job.partner not in settings.partners and job.partner not in sftp_destinations:
            names = ", ".join(sorted({*settings.partners, *sftp_destinations})) or "none"
            problems.add((*at, "partner"), f"{job.partner!r} is not a configured SFTP partner (configured: {names})")
        for j, dest in enumerate(job.destinations):
            if dest not in known and dest.kind != "memory":  # memory: the test backend
                problems.add(
                    (*at, "destinations", j),
                    f"{str(dest)!r} is not a configured destination (configured: {', '.join(known) or 'none'})",
                )
    return problems
