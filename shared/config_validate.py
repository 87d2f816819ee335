"""Cross-field checks of a converted :class:`Config`; each error names the field path and value."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from shared.config import FORMATS, NAME_RE, PARTNER_RE, Config
from shared.errors import ConfigError

BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")


def validate(config: Config) -> None:
    if not BUCKET_RE.match(config.bucket):
        raise ConfigError(f"bucket: {config.bucket!r} is not a valid bucket name (3-63 of a-z 0-9 . _ -)")
    if config.expiration_days < 1:
        raise ConfigError(f"expiration_days: {config.expiration_days!r} must be at least 1")
    if config.shard_size_bytes < 1024:
        raise ConfigError(f"shard_size_bytes: {config.shard_size_bytes!r} must be at least 1024")
    _check_partners(config)
    known = config.destination_names()
    _unique("datasets", [d.name for d in config.datasets])
    _unique("exports", [e.name for e in config.exports])
    for i, ds in enumerate(config.datasets):
        where = f"datasets[{i}]"
        if not NAME_RE.match(ds.name):
            raise ConfigError(f"{where}.name: {ds.name!r} is not a valid BigQuery dataset id")
        _check_schedule(f"{where}.schedule", ds.schedule, ds.time_zone, f"{where}.time_zone")
        _check_format(f"{where}.format", ds.format)
        _check_destinations(f"{where}.destinations", ds.destinations, known)
        for table in ds.tables.include + ds.tables.exclude:
            if not NAME_RE.match(table):
                raise ConfigError(f"{where}.tables: {table!r} is not a valid table id")
    for i, ex in enumerate(config.exports):
        where = f"exports[{i}]"
        if not NAME_RE.match(ex.name):
            raise ConfigError(f"{where}.name: {ex.name!r} must be letters, digits and underscores")
        if "{date}" not in ex.sql:
            raise ConfigError(f"{where}.sql: must contain the placeholder {{date}} (the run's date)")
        if ex.file_name.count("*") != 1 or "/" in ex.file_name:
            raise ConfigError(f"{where}.file_name: {ex.file_name!r} must contain exactly one '*' and no '/'")
        _check_schedule(f"{where}.schedule", ex.schedule, ex.time_zone, f"{where}.time_zone")
        _check_format(f"{where}.format", ex.format)
        _check_destinations(f"{where}.destinations", ex.destinations, known)
    box = config.destinations.box
    if box is not None:
        _check_box(box)
    v = config.verify
    if v.deadline_minutes < 1:
        raise ConfigError(f"verify.deadline_minutes: {v.deadline_minutes!r} must be at least 1")
    if v.max_heal_attempts < 0:
        raise ConfigError(f"verify.max_heal_attempts: {v.max_heal_attempts!r} must be 0 or more")
    _check_schedule("verify.sweep_schedule", v.sweep_schedule, "UTC", "verify")
    p = config.pubsub
    if not 5 <= p.max_delivery_attempts <= 100:
        raise ConfigError(f"pubsub.max_delivery_attempts: {p.max_delivery_attempts!r} must be between 5 and 100")
    if not 0 <= p.minimum_backoff_s <= p.maximum_backoff_s <= 600:
        raise ConfigError(
            f"pubsub: minimum_backoff_s={p.minimum_backoff_s!r}, maximum_backoff_s={p.maximum_backoff_s!r}; "
            "expected 0 <= minimum <= maximum <= 600"
        )


def _unique(where: str, names: list[str]) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise ConfigError(f"{where}[{i}].name: {name!r} is listed twice")
        seen.add(name)


def _check_schedule(where: str, schedule: str | None, tz: str, tz_where: str) -> None:
    if schedule is not None and not croniter.is_valid(schedule):
        raise ConfigError(f"{where}: {schedule!r} is not a valid cron expression")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{tz_where}: {tz!r} is not a known time zone (e.g. 'UTC', 'Europe/Berlin')") from None


def _check_format(where: str, fmt: str) -> None:
    if fmt not in FORMATS:
        raise ConfigError(f"{where}: {fmt!r} is not a supported format; expected one of {', '.join(FORMATS)}")


def _check_destinations(where: str, names: tuple[str, ...], known: tuple[str, ...]) -> None:
    for i, name in enumerate(names):
        if name not in known:
            raise ConfigError(
                f"{where}[{i}]: {name!r} is not a configured destination (configured: {', '.join(known) or 'none'})"
            )


def _check_partners(config: Config) -> None:
    for name, partner in config.destinations.sftp.items():
        where = f"destinations.sftp.{name}"
        if not PARTNER_RE.match(name):
            raise ConfigError(f"{where}: partner name {name!r} must be lower-case letters, digits, '-' or '_'")
        if not 1 <= partner.port <= 65535:
            raise ConfigError(f"{where}.port: {partner.port!r} is not a TCP port (1-65535)")
        if partner.password is None and partner.private_key is None:
            raise ConfigError(f"{where}: set password or private_key")
        if partner.known_hosts is None and partner.host_key_fingerprint is None:
            raise ConfigError(f"{where}: set known_hosts or host_key_fingerprint; host keys are always verified")
        if partner.host_key_fingerprint is not None and not partner.host_key_fingerprint.startswith("SHA256:"):
            raise ConfigError(
                f"{where}.host_key_fingerprint: {partner.host_key_fingerprint!r} must look like 'SHA256:…'"
            )
        if not partner.directory.startswith("/"):
            raise ConfigError(f"{where}.directory: {partner.directory!r} must be an absolute path")
        if partner.max_sessions < 1 or partner.connections_per_file < 1:
            raise ConfigError(f"{where}: max_sessions and connections_per_file must be at least 1")
        if not partner.partial_suffix or "/" in partner.partial_suffix:
            raise ConfigError(f"{where}.partial_suffix: {partner.partial_suffix!r} must be non-empty, without '/'")


def _check_box(box) -> None:
    auth = box.auth
    needs = {
        "jwt": ("jwt_config",),
        "ccg": ("client_id", "client_secret", "subject_id"),
        "developer_token": ("developer_token",),
    }
    for name in needs[auth.method]:
        if getattr(auth, name) is None:
            raise ConfigError(f"destinations.box.auth.{name}: required when method is {auth.method!r}")
    if box.chunked_threshold_bytes < 20_000_000:
        raise ConfigError(
            f"destinations.box.chunked_threshold_bytes: {box.chunked_threshold_bytes!r} is below Box's 20000000-byte minimum for upload sessions"
        )
    if not 1 <= box.parallel_parts <= 32:
        raise ConfigError(f"destinations.box.parallel_parts: {box.parallel_parts!r} must be between 1 and 32")
