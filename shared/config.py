"""offsite's one typed configuration.

Loaded from YAML or JSON (``OFFSITE_CONFIG``, default ``offsite.yaml``) by
:func:`shared.config_load.load_config`, with ``OFFSITE__SECTION__KEY=value`` environment
overrides. Every field has a help text (``metadata["help"]``) so ``offsite config show``
can document it. Validation errors name the field path and the bad value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from shared.secrets import Secret

ExportFormat = Literal["PARQUET", "AVRO", "CSV", "NEWLINE_DELIMITED_JSON"]
FORMATS: tuple[str, ...] = ("PARQUET", "AVRO", "CSV", "NEWLINE_DELIMITED_JSON")
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,1023}$")
PARTNER_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def _f(default=None, help: str = "", **kw):
    if "default_factory" in kw:
        return field(default_factory=kw.pop("default_factory"), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


@dataclass(frozen=True)
class TableSelection:
    include: tuple[str, ...] = _f((), "Tables to export; empty means every table in the dataset.")
    exclude: tuple[str, ...] = _f((), "Tables never exported, even when listed or matched.")


@dataclass(frozen=True)
class DatasetExport:
    name: str = _f(None, "BigQuery dataset id.")
    schedule: str | None = _f(None, "Cron expression for Cloud Scheduler, e.g. '0 2 * * *'.")
    time_zone: str = _f("UTC", "Time zone of the schedule.")
    tables: TableSelection = _f(help="Which tables to export.", default_factory=TableSelection)
    format: str = _f("PARQUET", "PARQUET (SNAPPY), AVRO, CSV (GZIP) or NEWLINE_DELIMITED_JSON (GZIP).")
    destinations: tuple[str, ...] = _f((), "Where files go: 'box', 'sftp:PARTNER'; empty = every destination.")


@dataclass(frozen=True)
class QueryExport:
    name: str = _f(None, 'Export name used in requests: {"export": NAME}.')
    sql: str = _f(None, "Standard SQL; '{date}' is replaced by a DATE literal of the run's date.")
    schedule: str | None = _f(None, "Cron expression for Cloud Scheduler.")
    time_zone: str = _f("UTC", "Time zone of the schedule and of the default date.")
    format: str = _f("CSV", "Output format, as for datasets.")
    file_name: str = _f(
        "{export}_{YYYYMMDD}-*.csv.gz",
        "File name template; '*' becomes the 12-digit shard number; {export}, {YYYYMMDD}, {date}.",
    )
    destinations: tuple[str, ...] = _f((), "Where files go: 'box', 'sftp:PARTNER'; empty = every destination.")


@dataclass(frozen=True)
class BoxAuth:
    method: Literal["jwt", "ccg", "developer_token"] = _f(
        "jwt", "jwt (app config JSON), ccg, or developer_token (local only)."
    )
    jwt_config: Secret | None = _f(None, "Box app JSON config (seed 000: sm://…/oxo-box-jwt-config/versions/latest).")
    client_id: str | None = _f(None, "CCG client id.")
    client_secret: Secret | None = _f(None, "CCG client secret.")
    subject_type: Literal["enterprise", "user"] = _f("enterprise", "CCG subject: enterprise or user.")
    subject_id: str | None = _f(None, "CCG enterprise id or user id.")
    developer_token: Secret | None = _f(None, "Developer token (local stack and experiments only).")


@dataclass(frozen=True)
class BoxDestination:
    root_folder_id: str = _f("0", "Box folder id under which GCP/bigquery/... is mirrored.")
    auth: BoxAuth = _f(help="How to authenticate.", default_factory=BoxAuth)
    base_url: str = _f("https://api.box.com", "API base URL (the SDK appends /2.0).")
    upload_url: str = _f("https://upload.box.com/api", "Upload base URL.")
    oauth_url: str = _f("https://account.box.com/api/oauth2", "OAuth base URL.")
    chunked_threshold_bytes: int = _f(20_000_000, "Files this size and larger use an upload session.")
    parallel_parts: int = _f(4, "Parts of an upload session sent at once.")
    timeout_s: float = _f(120.0, "Per-request timeout.")


@dataclass(frozen=True)
class SftpPartner:
    host: str = _f(None, "SFTP server host name.")
    username: str = _f(None, "Login name.")
    port: int = _f(22, "SSH port.")
    password: Secret | None = _f(None, "Password (or use private_key).")
    private_key: Secret | None = _f(None, "Private key in OpenSSH/PEM form (RSA, ECDSA, Ed25519).")
    private_key_passphrase: Secret | None = _f(None, "Passphrase of the private key.")
    known_hosts: Secret | None = _f(None, "known_hosts content (pinning is the default; no auto-accept).")
    host_key_fingerprint: str | None = _f(None, "Alternative pin: 'SHA256:…' fingerprint of the host key.")
    directory: str = _f("/", "Remote directory that deliveries go under.")
    flat: bool = _f(False, "Put files directly in directory instead of {export}/{YYYYMMDD}/.")
    posix_rename: bool = _f(True, "Server supports posix-rename@openssh.com; off: remove + rename.")
    hashing: Literal["none", "check-file", "sha1sum"] = _f("none", "How to ask the server for SHA-1.")
    partial_suffix: str = _f(".partial", "Suffix of files being written; renamed when complete.")
    max_sessions: int = _f(4, "Concurrent SFTP sessions allowed by the partner.")
    ciphers: tuple[str, ...] = _f((), "Preferred ciphers, e.g. ['aes128-gcm@openssh.com'].")
    connect_timeout_s: float = _f(30.0, "TCP + SSH handshake timeout.")
    connections_per_file: int = _f(1, "Parallel SSH connections writing one large file.")


@dataclass(frozen=True)
class Destinations:
    box: BoxDestination | None = _f(None, "The Box destination (disaster-recovery copies).")
    sftp: dict[str, SftpPartner] = _f(help="SFTP partners by name.", default_factory=dict)


@dataclass(frozen=True)
class Alerts:
    slack_webhook_url: Secret | None = _f(None, "Slack incoming webhook; alerts are off without it.")
    min_interval_s: int = _f(60, "At most one alert per (run, destination, status) per this many seconds.")
    notification_channels: tuple[str, ...] = _f(
        (),
        "Cloud Monitoring channels of the alert policies (infra/monitoring.tf): an email address "
        "(a channel is created) or projects/P/notificationChannels/ID.",
    )


@dataclass(frozen=True)
class VerifySettings:
    deadline_minutes: int = _f(120, "Runs with no result after this long are reported 'incomplete'.")
    self_heal: bool = _f(True, "Re-deliver missing or differing files once and verify again.")
    max_heal_attempts: int = _f(1, "Re-delivery rounds per run and destination.")
    sweep_schedule: str = _f("*/30 * * * *", "Cron of the scheduled verify sweep.")
    download_hashes: bool = _f(True, "Hash files by reading them back where the server cannot hash (else size-only).")


@dataclass(frozen=True)
class PubSubSettings:
    max_delivery_attempts: int = _f(5, "Deliveries before a message goes to the dead-letter topic (>= 5).")
    minimum_backoff_s: int = _f(10, "Redelivery backoff, lower bound.")
    maximum_backoff_s: int = _f(600, "Redelivery backoff, upper bound.")


@dataclass(frozen=True)
class Config:
    project: str = _f(None, "Google Cloud project id.")
    bucket: str = _f(None, "GCS bucket that exports are written to.")
    region: str = _f("us-central1", "Region of functions and the bucket.")
    expiration_days: int = _f(30, "Exported files are deleted by a lifecycle rule after this many days.")
    export_prefix: str = _f("exports", "Object prefix of every export run.")
    shard_size_bytes: int = _f(1_000_000_000, "Target bytes per exported file (BigQuery writes <= 1 GB).")
    datasets: tuple[DatasetExport, ...] = _f((), "Datasets exported whole (seed 000).")
    exports: tuple[QueryExport, ...] = _f((), "Query exports with a date (seed 003).")
    destinations: Destinations = _f(help="Box and SFTP destinations.", default_factory=Destinations)
    alerts: Alerts = _f(help="Where failures are reported.", default_factory=Alerts)
    verify: VerifySettings = _f(help="Verification and self-heal.", default_factory=VerifySettings)
    pubsub: PubSubSettings = _f(help="Retry and dead-letter policy.", default_factory=PubSubSettings)

    def destination_names(self) -> tuple[str, ...]:
        """Every routable destination: 'box' (if configured) and 'sftp:NAME' per partner."""
        names = ["box"] if self.destinations.box else []
        return tuple(names + [f"sftp:{p}" for p in self.destinations.sftp])

    def dataset(self, name: str) -> DatasetExport | None:
        return next((d for d in self.datasets if d.name == name), None)

    def export(self, name: str) -> QueryExport | None:
        return next((e for e in self.exports if e.name == name), None)

    def sftp_partner(self, name: str) -> SftpPartner:
        from shared.errors import ConfigError

        try:
            return self.destinations.sftp[name]
        except KeyError:
            known = ", ".join(self.destinations.sftp) or "none configured"
            raise ConfigError(f"destinations.sftp: no partner named {name!r} (known: {known})") from None
