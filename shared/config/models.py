"""offsite's one typed configuration, as frozen pydantic models.

Every field's ``description`` is its help text (``offsite config docs``). Unknown keys are
errors (``extra="forbid"``); models are immutable and, where every field is, hashable
(``SftpPartner`` keys session pools, ``BoxDestination`` a per-process cache). Single-field
rules are field validators; rules spanning fields (routed destinations exist, names are
unique, auth has what its method needs) are model validators. Every rule raises
:class:`~shared.validation.Problem` with a message naming the value and what was expected;
:func:`shared.config.load.load_config` turns them into ``ConfigError`` lines with the path.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from shared import sql_date, topology
from shared.config.buckets import BucketMirror, bucket_problems, reserved_folders
from shared.config.collect import CollectJob, CollectSettings, collect_problems
from shared.config.destinations import Destinations, SftpPartner
from shared.config.http import HttpSettings
from shared.config.ingest import IngestSettings
from shared.config.restore_drill import RESTORE_DRILL_FIELD, RestoreDrill, drill_problems
from shared.config.retention import RETENTION_FIELD, Retention
from shared.config.secrets import Secret, name_secrets
from shared.config.types import (
    NAME_RE,
    TABLE_RE,
    Cron,
    DatasetId,
    Format,
    Model,
    Names,
    RelativeDay,
    Routes,
    TimeZone,
    between,
    bucket_problem,
    days_back,
    each_matching,
    matching,
)
from shared.ids import DestinationId
from shared.validation import Problem, Problems

# ---- exports -----------------------------------------------------------------------------


TableIds = Annotated[Names, each_matching(TABLE_RE, "is not a valid table id (ASCII letters, digits, '_', '-')")]


class TableSelection(Model):
    include: TableIds = Field((), description="Tables to export; empty means every table in the dataset.")
    exclude: TableIds = Field((), description="Tables never exported, even when listed or matched.")


class DatasetExport(Model):
    name: DatasetId = Field(description="BigQuery dataset id.")
    schedule: Cron | None = Field(None, description="Cron expression for Cloud Scheduler, e.g. '0 2 * * *'.")
    time_zone: TimeZone = Field("UTC", description="Time zone of the schedule.")
    tables: TableSelection = Field(default_factory=TableSelection, description="Which tables to export.")
    format: Format = Field(
        "PARQUET", description="PARQUET (SNAPPY), AVRO, CSV (GZIP) or NEWLINE_DELIMITED_JSON (GZIP)."
    )
    destinations: Routes = Field((), description="Where files go: 'box', 'sftp:PARTNER'; empty = every destination.")
    retention: Retention | None = RETENTION_FIELD
    restore_drill: RestoreDrill | None = RESTORE_DRILL_FIELD


class QueryExport(Model):
    name: Annotated[str, matching(NAME_RE, "must be letters, digits and underscores")] = Field(
        description='Export name used in requests: {"export": NAME}.'
    )
    sql: str = Field(
        description="Standard SQL with {date}: alone it is a DATE parameter (@run_date); inside quotes "
        "('{date}') the date's text YYYY-MM-DD, which compares as the date against DATE and STRING columns; "
        "inside a table name (events_{date}) YYYYMMDD. See docs/exports.md."
    )
    snapshot: bool = Field(
        False,
        description="The query reads no date (SELECT id, name, email FROM customers): each run exports all it "
        "returns then; the run's date only names the files. Without it the sql must hold {date}.",
    )
    schedule: Cron | None = Field(None, description="Cron expression for Cloud Scheduler.")
    time_zone: TimeZone = Field("UTC", description="Time zone of the schedule and of the default date.")
    date: RelativeDay = Field(
        "today",
        description="The day a request without a date exports, counted from the scheduled day (the publish "
        "time's date in time_zone): today, yesterday (a daily Airflow run's ds) or -N (N days back).",
    )
    format: Format = Field("CSV", description="Output format, as for datasets.")
    file_name: str = Field(
        "{export}_{YYYYMMDD}-*.csv.gz",
        description="File name template; '*' becomes the 12-digit shard number; {export}, {YYYYMMDD}, {date}.",
    )
    destinations: Routes = Field((), description="Where files go: 'box', 'sftp:PARTNER'; empty = every destination.")
    retention: Retention | None = RETENTION_FIELD

    @field_validator("sql")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        try:
            sql_date.placeholders(value)
        except sql_date.SqlDateError as exc:
            raise Problem(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _dated_or_snapshot(self) -> QueryExport:
        """Exactly one of: the sql holds {date}, or snapshot: true. A dated export that lost its
        {date} would deliver the whole result every day under each day's name."""
        dated = "{date}" in self.sql
        if not dated and not self.snapshot:
            raise Problem(
                "must contain the placeholder {date} (the run's date), or set snapshot: true for a query "
                "that reads no date",
                ("sql",),
            )
        if dated and self.snapshot:
            raise Problem("true, but sql holds {date}: a snapshot reads no date; remove one of them", ("snapshot",))
        return self

    @property
    def days_back(self) -> int:
        """How many days before the scheduled day a request without a date exports (``date``)."""
        return days_back(self.date)

    @field_validator("file_name")
    @classmethod
    def _one_star(cls, value: str) -> str:
        if value.count("*") != 1 or "/" in value:
            raise Problem(f"{value!r} must contain exactly one '*' and no '/'")
        return value


# ---- destinations ------------------------------------------------------------------------


# ---- operations --------------------------------------------------------------------------


class Alerts(Model):
    slack_webhook_url: Secret | None = Field(None, description="Slack incoming webhook; alerts are off without it.")
    min_interval_s: int = Field(
        60,
        description="At most one alert message per run per this many seconds (more results are queued, not dropped).",
    )
    notification_channels: tuple[str, ...] = Field(
        (),
        description="Cloud Monitoring channels of the alert policies (infra/monitoring.tf): an email address "
        "(a channel is created) or projects/P/notificationChannels/ID.",
    )


DRAIN_MARGIN_S = 60
"""What an invocation needs after ``delivery.budget_s``: finish the chunk in flight, save the
checkpoint, publish the continuation and report, before the function's timeout ends it."""
# The functions that transfer within delivery.budget_s: the delivery functions and collect_copy.
TRANSFER_TIMEOUT_S = min(fn.timeout_s for fn in topology.FUNCTIONS if fn.serves or fn.name == "collect_copy")
MAX_DELIVERY_BUDGET_S = TRANSFER_TIMEOUT_S - DRAIN_MARGIN_S


class DeliverySettings(Model):
    budget_s: Annotated[float, between(1)] = Field(
        480.0,
        description="Longest time one invocation transfers a file to a resumable destination (Box upload "
        "sessions, SFTP partial files) before it checkpoints and a new invocation continues; at most "
        f"{MAX_DELIVERY_BUDGET_S}: {DRAIN_MARGIN_S} s under the {TRANSFER_TIMEOUT_S} s a delivery function may "
        "run, to drain what is in flight, checkpoint and report.",
    )

    @field_validator("budget_s")
    @classmethod
    def _drains_before_the_timeout(cls, value: float) -> float:
        if value > MAX_DELIVERY_BUDGET_S:
            raise Problem(
                f"{value:g} s leaves less than {DRAIN_MARGIN_S} s before the delivery functions' "
                f"{TRANSFER_TIMEOUT_S} s timeout to checkpoint and report; expected at most {MAX_DELIVERY_BUDGET_S}"
            )
        return value


class VerifySettings(Model):
    deadline_minutes: Annotated[int, between(1)] = Field(
        120, description="Runs with no result after this long are reported 'incomplete'."
    )
    self_heal: bool = Field(True, description="Re-deliver missing or differing files once and verify again.")
    max_heal_attempts: Annotated[int, between(0)] = Field(1, description="Re-delivery rounds per run and destination.")
    sweep_schedule: Cron = Field("*/30 * * * *", description="Cron of the scheduled verify sweep.")
    download_hashes: bool = Field(
        True, description="Hash files by reading them back where the server cannot hash (else size-only)."
    )
    recheck_days: Annotated[int, between(0)] = Field(
        7,
        description="Re-verify, once a day (from the verify sweep), the runs of the last N days whose destination "
        "result was in_sync; files deleted or changed since are reported as a 'mismatch' (stage verify:recheck). "
        "0 = off.",
    )
    rows: bool = Field(
        False,
        description="Also read every delivered file as a consumer would (Parquet/Avro metadata, CSV/NDJSON parsed) "
        "and compare the record count with the manifest's row_count: a file whose bytes arrived but whose rows do "
        "not parse back is a 'mismatch'. Reads each file back once per verification (a Parquet file: only its two "
        "ends, by ranged reads), spread over invocations like any read-back.",
    )


class PubSubSettings(Model):
    max_delivery_attempts: Annotated[int, between(5, 100)] = Field(
        5, description="Deliveries before a message goes to the dead-letter topic (5-100)."
    )
    minimum_backoff_s: int = Field(10, description="Redelivery backoff, lower bound.")
    maximum_backoff_s: int = Field(600, description="Redelivery backoff, upper bound (at most 600).")

    @model_validator(mode="after")
    def _backoff_order(self) -> PubSubSettings:
        if not 0 <= self.minimum_backoff_s <= self.maximum_backoff_s <= 600:
            raise Problem(
                f"minimum_backoff_s={self.minimum_backoff_s!r}, maximum_backoff_s={self.maximum_backoff_s!r}; "
                "expected 0 <= minimum <= maximum <= 600"
            )
        return self


# ---- the whole config --------------------------------------------------------------------

# A Google Cloud project id, optionally domain-scoped (restore accepts `example.com:proj.d.t` too).
PREFIX_SEGMENT_RE = re.compile(r"[A-Za-z0-9._-]+")
# Google Cloud asks for 6-30 characters; shorter ones are let through (the local stack's tests use `p`).
PROJECT_RE = re.compile(r"(?:[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?:)?[a-z](?:[a-z0-9-]{0,28}[a-z0-9])?")


class Config(Model):
    project: str = Field(description="Google Cloud project id.")
    bucket: str = Field(description="GCS bucket that exports are written to (its object events start the uploads).")
    state_bucket: str | None = Field(
        None,
        description="GCS bucket for offsite's own state: verify markers, run history, alerts, transfer "
        "checkpoints. Kept apart so no state write fires an upload function. Default: '<bucket>-state'.",
    )
    region: str = Field("us-central1", description="Region of functions and the bucket.")
    expiration_days: Annotated[int, between(1)] = Field(
        30, description="Exported files are deleted by a lifecycle rule after this many days."
    )
    export_prefix: str = Field(
        "exports",
        description="Object prefix of every export run: one or more folder names joined by '/' "
        "(a trailing '/' is dropped).",
    )
    shard_size_bytes: Annotated[int, between(1024)] = Field(
        1_000_000_000, description="Target bytes per exported file (BigQuery writes <= 1 GB)."
    )
    datasets: tuple[DatasetExport, ...] = Field((), description="Datasets exported whole, on a schedule.")
    exports: tuple[QueryExport, ...] = Field((), description="Query exports of a dated SQL query.")
    buckets: tuple[BucketMirror, ...] = Field(
        (), description="GCS buckets mirrored object by object to destinations (docs/mirror.md)."
    )
    destinations: Destinations = Field(default_factory=Destinations, description="Box and SFTP destinations.")
    alerts: Alerts = Field(default_factory=Alerts, description="Where failures are reported.")
    delivery: DeliverySettings = Field(default_factory=DeliverySettings, description="Transfers to destinations.")
    verify: VerifySettings = Field(default_factory=VerifySettings, description="Verification and self-heal.")
    pubsub: PubSubSettings = Field(default_factory=PubSubSettings, description="Retry and dead-letter policy.")
    http: HttpSettings = Field(default_factory=HttpSettings, description="The HTTP trigger: invokers and token checks.")
    ingest: IngestSettings | None = Field(None, description="SQLite → BigQuery ingest (docs/ingest.md).")
    collect: CollectSettings[SftpPartner] = Field(
        default_factory=CollectSettings[SftpPartner], description="Files collected from partners' SFTP servers."
    )

    @field_validator("project")
    @classmethod
    def _project_id(cls, value: str) -> str:
        if not PROJECT_RE.fullmatch(value):
            raise Problem(
                f"{value!r} is not a Google Cloud project id (lower-case letters, digits and '-', starting with "
                "a letter, not ending with '-', at most 30; domain-scoped as example.com:my-project)"
            )
        return value

    @field_validator("export_prefix")
    @classmethod
    def _export_prefix(cls, value: str) -> str:
        # The IAM grants (infra/iam.tf) are conditioned on "<prefix>/"; an empty or absolute
        # prefix would put runs at "/…", outside every grant and every other stage's parse.
        segments = value.removesuffix("/").split("/")
        if not all(PREFIX_SEGMENT_RE.fullmatch(s) and s not in (".", "..") for s in segments):
            raise Problem(
                f"{value!r} is not an object prefix (expected folder names of letters, digits, '.', '_' "
                "or '-' joined by '/', e.g. 'exports' or 'backups/bigquery'; not empty, no leading '/')"
            )
        return value.removesuffix("/")

    @field_validator("bucket", "state_bucket")
    @classmethod
    def _bucket_name(cls, value: str | None) -> str | None:
        problem = None if value is None else bucket_problem(value)
        if problem is not None:
            raise Problem(problem)
        return value

    @property
    def state_bucket_name(self) -> str:
        """Where offsite keeps its own state (``state_bucket``, default ``<bucket>-state``)."""
        return self.state_bucket or f"{self.bucket}-state"

    @model_validator(mode="after")
    def _names_and_routes(self) -> Config:
        problems = Problems()
        if self.state_bucket is None and len(self.state_bucket_name) > 63:
            problems.add(
                ("state_bucket",), f"not set, and {self.state_bucket_name!r} is too long to be the default; name one"
            )
        if self.state_bucket_name == self.bucket:
            problems.add(
                ("state_bucket",), f"{self.bucket!r} is the exports bucket; state must live apart from exports"
            )
        sections: tuple[tuple[str, tuple[DatasetExport | QueryExport, ...]], ...] = (
            ("datasets", self.datasets),
            ("exports", self.exports),
        )
        for section, entries in sections:
            seen: set[str] = set()
            for i, entry in enumerate(entries):
                if entry.name in seen:
                    problems.add((section, i, "name"), f"{entry.name!r} is listed twice")
                seen.add(entry.name)
        known = self.destination_names()
        for section, entries in sections:
            for i, entry in enumerate(entries):
                for j, name in enumerate(entry.destinations):
                    if name not in known:
                        problems.add(
                            (section, i, "destinations", j),
                            f"{str(name)!r} is not a configured destination (configured: {', '.join(known) or 'none'})",
                        )
        reserved = reserved_folders(
            [d.name for d in self.datasets],
            [e.name for e in self.exports],
            {job.name: job.target_folder for job in self.collect.jobs if job.target_folder or job.recursive},
        )
        bucket_problems(self.buckets, known, (self.bucket, self.state_bucket_name), reserved, problems)
        drill_problems(self.datasets, self.project, known, problems)
        problems.items.extend(
            collect_problems(self.collect, self.destinations.sftp, known, self.delivery.budget_s).items
        )
        problems.raise_any()
        name_secrets(self, "")
        return self

    def destination_names(self) -> tuple[DestinationId, ...]:
        """Every routable destination: 'box' (if configured) and 'sftp:NAME' per partner."""
        names = [DestinationId("box")] if self.destinations.box else []
        names += [DestinationId("sftp", p) for p in self.destinations.sftp]
        return tuple(names + [DestinationId("drive", d) for d in self.destinations.drive])

    def dataset(self, name: str) -> DatasetExport | None:
        return next((d for d in self.datasets if d.name == name), None)

    def export(self, name: str) -> QueryExport | None:
        return next((e for e in self.exports if e.name == name), None)

    def mirror(self, bucket: str) -> BucketMirror | None:
        """The ``buckets[]`` entry of ``bucket``; None when it is not mirrored."""
        return next((b for b in self.buckets if b.name == bucket), None)

    def sftp_partner(self, name: str) -> SftpPartner:
        from shared.errors import ConfigError

        try:
            return self.destinations.sftp[name]
        except KeyError:
            known = ", ".join(self.destinations.sftp) or "none configured"
            raise ConfigError(f"destinations.sftp: no partner named {name!r} (known: {known})") from None

    def collect_job(self, name: str) -> CollectJob | None:
        return self.collect.job(name)

    def collect_partner(self, name: str) -> SftpPartner:
        """A collect partner: ``collect.partners`` first, then ``destinations.sftp``."""
        partner = self.collect.partners.get(name)
        return partner if partner is not None else self.sftp_partner(name)
