"""The pipeline's topology as data: topics, functions, triggers, retry and dead-letter.

One description drives both the local stack (devstack creates these topics and push
subscriptions) and the cloud (tests/infra checks that infra/*.tf declares the same), so the
two cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

EXPORT_REQUESTS = "export-requests"
TABLE_EXPORTS = "table-exports"
DELIVERIES = "deliveries"
VERIFY_REQUESTS = "verify-requests"
VERIFY_RESULTS = "verify-results"
DELIVERY_CONTINUATIONS = "delivery-continuations"  # a transfer that ran out of time continues
EXPORT_SWEEPS = "export-sweeps"  # the scheduled finalize sweep: exports whose completion event was lost
MIRROR_RECONCILES = "mirror-reconciles"  # a mirrored bucket's scheduled reconcile and verify (docs/mirror.md)
INGEST_REQUESTS = "ingest-requests"  # SQLite → BigQuery ingest runs: {"tables": [...], "full": true}
INGEST_SNAPSHOTS = "ingest-snapshots"  # the snapshot bucket's GCS notifications (OBJECT_FINALIZE)
COLLECT_REQUESTS = "collect-requests"  # {"collect": JOB}: list a partner directory (docs/collect.md)
COLLECT_FILES = "collect-files"  # one listed file of a collect run, to copy
RESTORE_DRILLS = "restore-drills"  # {"dataset": D}: a restore drill, and its one-table continuations

TOPICS: tuple[str, ...] = (
    EXPORT_REQUESTS,
    TABLE_EXPORTS,
    DELIVERIES,
    VERIFY_REQUESTS,
    VERIFY_RESULTS,
    DELIVERY_CONTINUATIONS,
    EXPORT_SWEEPS,
    MIRROR_RECONCILES,
    INGEST_REQUESTS,
    INGEST_SNAPSHOTS,
    COLLECT_REQUESTS,
    COLLECT_FILES,
    RESTORE_DRILLS,
)

GCS_FINALIZED = "google.cloud.storage.object.v1.finalized"
GCS_TRIGGER = "gcs-finalized"  # the trigger name of storage triggers (Trigger.name)
# A mirrored bucket's object deletes (docs/mirror.md): the delivery functions' Eventarc triggers on
# the configured buckets (infra/mirror.tf), locally the relay.
GCS_DELETED = "google.cloud.storage.object.v1.deleted"
GCS_DELETED_TRIGGER = "gcs-deleted"
PUBSUB_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
# BigQuery job completion, as Eventarc delivers Cloud Audit Logs entries (docs/exports.md):
AUDIT_LOG_WRITTEN = "google.cloud.audit.log.v1.written"
BIGQUERY_SERVICE = "bigquery.googleapis.com"
BIGQUERY_JOB_METHOD = "google.cloud.bigquery.v2.JobService.InsertJob"
BQ_JOB_TRIGGER = "bigquery-job-completed"  # the trigger name of the audit-log trigger (Trigger.name)


@dataclass(frozen=True)
class RetryPolicy:
    """Push-subscription redelivery: exponential backoff, then the dead-letter topic."""

    minimum_backoff_s: int = 10
    maximum_backoff_s: int = 600
    max_delivery_attempts: int = 5


@dataclass(frozen=True)
class Trigger:
    """What starts a function: a Pub/Sub topic, GCS object finalize on the exports bucket, or a
    Cloud Audit Logs entry (Eventarc ``event_filters``: serviceName, methodName)."""

    kind: Literal["pubsub", "gcs", "auditlog"]
    topic: str | None = None  # for kind == "pubsub"
    event_type: str = PUBSUB_PUBLISHED
    filters: tuple[tuple[str, str], ...] = ()  # for kind == "auditlog": (attribute, value)

    @property
    def name(self) -> str:
        if self.kind == "pubsub" and self.topic:
            return self.topic
        return BQ_JOB_TRIGGER if self.kind == "auditlog" else GCS_TRIGGER


@dataclass(frozen=True)
class FunctionSpec:
    """One deployed function: its source folder, entry point, triggers and sizing."""

    name: str  # e.g. "fan_out"; the Cloud Run service (and Cloud Function) is deployed_name, "fan-out"
    source: str  # folder under functions/
    entry_point: str
    triggers: tuple[Trigger, ...]
    timeout_s: int = 540
    memory_mb: int = 512
    max_instances: int = 10
    concurrency: int = 1
    """Requests one instance handles at once (2nd gen ``max_instance_request_concurrency``).
    I/O-bound functions take many: every object written to the exports bucket reaches all three
    storage-triggered functions, and most of those events are acknowledged at once."""
    serves: frozenset[str] = frozenset()
    """Destination kinds this function delivers to (``box``, ``sftp``): delivery functions run
    the same handler (shared.stages.deliver), each for its own kinds (own scaling, secrets, IAM)."""
    reaches: frozenset[str] = frozenset()
    """Destination kinds it calls without delivering to them (verify reads back, collect copies,
    the drill restores): with ``serves``, every kind whose API limits it shares (:attr:`uses`)."""
    http: bool = False
    """An HTTP function (no triggers): callers reach its URL directly with an OIDC token."""

    @property
    def uses(self) -> frozenset[str]:
        """Every destination kind whose API and credentials this function uses."""
        return self.serves | self.reaches

    @property
    def max_concurrent_requests(self) -> int:
        """The most events the deployed function handles at once (instances × requests per
        instance); the local push dispatcher honours it."""
        return self.max_instances * self.concurrency

    @property
    def deployed_name(self) -> str:
        """The Cloud Function's (and its Cloud Run service's) name in infra/: ``fan-out``."""
        return self.name.replace("_", "-")

    def subscription_name(self, trigger: Trigger) -> str:
        """Name of the push subscription (or Eventarc trigger) feeding this function."""
        return f"{self.deployed_name}-{trigger.name}"

    def dead_letter_topic(self, trigger: Trigger) -> str:
        return f"{self.subscription_name(trigger)}-dlq"


_GCS = Trigger(kind="gcs", event_type=GCS_FINALIZED)
BQ_JOB_COMPLETED = Trigger(
    kind="auditlog",
    event_type=AUDIT_LOG_WRITTEN,
    filters=(("serviceName", BIGQUERY_SERVICE), ("methodName", BIGQUERY_JOB_METHOD)),
)


def _pubsub(topic: str) -> Trigger:
    return Trigger(kind="pubsub", topic=topic)


def _delivery_function(
    name: str, *kinds: str, memory_mb: int, concurrency: int, max_instances: int = 10
) -> FunctionSpec:
    """A function delivering export files to the destinations of one kind: finalize events and
    the continuations of its own long transfers (shared/stages/deliver.py)."""
    return FunctionSpec(
        name,
        name,
        name,
        (_GCS, _pubsub(DELIVERY_CONTINUATIONS)),
        timeout_s=540,
        memory_mb=memory_mb,
        max_instances=max_instances,
        concurrency=concurrency,
        serves=frozenset(kinds),
    )


DESTINATION_KINDS = frozenset({"box", "sftp", "drive"})

# The scheduled sweep and a mirror reconcile list a whole export prefix or bucket in one
# invocation (docs/capacity.md, "The sweeps' listings"): the most an event-driven function may run.
VERIFY_TIMEOUT_S = 540


FUNCTIONS: tuple[FunctionSpec, ...] = (
    FunctionSpec(
        "fan_out", "export_table", "fan_out", (_pubsub(EXPORT_REQUESTS),), timeout_s=120, memory_mb=512, concurrency=2
    ),
    # export_table starts (or re-attaches to) BigQuery jobs and waits on each for at most its
    # budget (60 s); a job's completion (the audit-log trigger) or the scheduled sweep
    # (export-sweeps) writes the manifest of one that outlasts it. No table data passes through
    # it: 10 x 16 = 160 exports can start at once (a 100-table dataset fans out in one round;
    # docs/capacity.md counts the rounds of larger ones).
    FunctionSpec(
        "export_table",
        "export_table",
        "export_table",
        (_pubsub(TABLE_EXPORTS), BQ_JOB_COMPLETED, _pubsub(EXPORT_SWEEPS)),
        timeout_s=540,
        memory_mb=512,
        concurrency=16,
    ),
    # Drive is a cloud API upload like Box (chunked HTTPS, OAuth): the same function serves both.
    _delivery_function("upload_box", "box", "drive", memory_mb=1024, concurrency=8),
    # Only max_sessions of them write at once (the session pool); the rest wait for a session
    # or are events of other objects, acknowledged at once.
    _delivery_function("transfer_sftp", "sftp", memory_mb=512, concurrency=16, max_instances=4),
    FunctionSpec(
        "verify",
        "verify",
        "verify",
        (_pubsub(DELIVERIES), _pubsub(VERIFY_REQUESTS), _GCS, _pubsub(MIRROR_RECONCILES)),
        timeout_s=VERIFY_TIMEOUT_S,
        memory_mb=1024,
        concurrency=16,
        reaches=DESTINATION_KINDS,
    ),
    # seed 000's POST /sync API (shared/http_trigger): validates and publishes export requests,
    # and with ?wait= holds the request until verify has reported (up to its timeout, as 2nd-gen
    # HTTP functions may run for 60 minutes); mostly waiting on GCS, so many requests at once.
    FunctionSpec(
        "http_trigger",
        "http_trigger",
        "http_trigger",
        (),
        timeout_s=3600,
        memory_mb=512,
        max_instances=4,
        concurrency=16,
        http=True,
    ),
    # SQLite snapshot in GCS → BigQuery (docs/ingest.md). One run at a time per table is the
    # lease's job; one request per instance keeps the snapshot on /tmp (memory) to one copy.
    FunctionSpec(
        "ingest_sqlite",
        "ingest_sqlite",
        "ingest_sqlite",
        (_pubsub(INGEST_REQUESTS), _pubsub(INGEST_SNAPSHOTS)),
        timeout_s=540,
        memory_mb=2048,
        max_instances=2,
        concurrency=1,
    ),
    # collect (docs/collect.md): list a partner's directory, then copy each file to every
    # destination; one SFTP read per file, so few at once per instance (the partner's sessions).
    FunctionSpec(
        "collect_list",
        "collect",
        "collect_list",
        (_pubsub(COLLECT_REQUESTS),),
        timeout_s=300,
        memory_mb=512,
        reaches=frozenset({"sftp"}),  # the partners' servers
    ),
    FunctionSpec(
        "collect_copy",
        "collect",
        "collect_copy",
        (_pubsub(COLLECT_FILES),),
        timeout_s=540,
        memory_mb=1024,
        max_instances=4,
        concurrency=2,
        reaches=DESTINATION_KINDS,
    ),
    # the restore drill (shared/restore/drill.py): one table per invocation (stage, load, prove,
    # drop), the rest of the sample as continuation messages; a load job waits on BigQuery.
    FunctionSpec(
        "restore_drill",
        "restore_drill",
        "restore_drill",
        (_pubsub(RESTORE_DRILLS),),
        timeout_s=540,
        memory_mb=1024,
        max_instances=2,
        concurrency=1,
        reaches=DESTINATION_KINDS,
    ),
)

DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True)
class Subscription:
    """A push subscription (local) / trigger (cloud) with its retry and dead-letter policy."""

    name: str
    function: str
    trigger: Trigger
    dead_letter_topic: str
    retry: RetryPolicy = field(default_factory=RetryPolicy)


def subscriptions(retry: RetryPolicy = DEFAULT_RETRY) -> list[Subscription]:
    """Every (function, trigger) pair, in a stable order."""
    return [
        Subscription(fn.subscription_name(t), fn.name, t, fn.dead_letter_topic(t), retry)
        for fn in FUNCTIONS
        for t in fn.triggers
    ]


def function(name: str) -> FunctionSpec:
    for fn in FUNCTIONS:
        if fn.name == name:
            return fn
    raise KeyError(f"no function named {name!r}; known: {', '.join(f.name for f in FUNCTIONS)}")


# ---- dead letters become results ----------------------------------------------------------------

DEAD_LETTER_REPORTER = "verify"
REPORTS_DEAD_LETTER_TOPIC = "dead-letter-reports-dlq"  # where a report that itself keeps failing ends


@dataclass(frozen=True)
class DeadLetterReport:
    """A push subscription on one dead-letter topic, feeding verify's dead-letter handler: every
    dead-lettered message becomes a ``failed`` result (and an alert) within its push latency,
    instead of waiting silently for someone to run ``offsite dlq list``. The DLQ's own pull
    subscription (``<dlq>-sub``) still keeps the message for ``offsite dlq list|replay``."""

    source: Subscription  # the subscription whose messages died

    @property
    def topic(self) -> str:
        return self.source.dead_letter_topic

    @property
    def name(self) -> str:
        return f"{self.topic}-report"

    @property
    def function(self) -> str:
        return DEAD_LETTER_REPORTER


def dead_letter_reports(retry: RetryPolicy = DEFAULT_RETRY) -> list[DeadLetterReport]:
    """One report subscription per dead-letter topic, in the order of :func:`subscriptions`."""
    return [DeadLetterReport(s) for s in subscriptions(retry)]


def subscription_named(name: str) -> Subscription | None:
    """The subscription ``name`` (short id, or ``projects/P/subscriptions/ID``), if it is ours."""
    short = name.rsplit("/", 1)[-1]
    return next((s for s in subscriptions() if s.name == short), None)
