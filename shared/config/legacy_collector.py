"""The SFTP → Google Drive collector job offsite's collect replaces (a Cloud Run job reading a
partner's export directory into one Drive folder), in offsite's terms, for ``offsite config
import collector.env``.

Its settings are environment variables: ``<PARTNER>_SFTP_HOSTNAME``, ``_USERNAME``,
``_PASSWORD``, ``_PRIVATE_KEY`` and ``_EXPORT_ID`` (the directory ``/<id>``), and
``GOOGLE_CLIENT_ID``, ``GOOGLE_CLIENT_SECRET``, ``GOOGLE_REFRESH_TOKEN`` and
``GOOGLE_DRIVE_FOLDER_ID``. They become an SFTP partner, a Drive destination (OAuth) and a
collect job that puts the files directly into that folder (``folder: "/"``), daily at 06:00 New
York time as the old job ran. Secrets become Secret Manager references, never values.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

HOST_KEY = re.compile(r"^([A-Z][A-Z0-9]*)_SFTP_HOSTNAME$")
GOOGLE_KEYS = ("GOOGLE_CLIENT_ID", "GOOGLE_CLIENT_SECRET", "GOOGLE_REFRESH_TOKEN", "GOOGLE_DRIVE_FOLDER_ID")
OLD_SCHEDULE = {"schedule": "0 6 * * *", "time_zone": "America/New_York"}


@dataclass(frozen=True)
class CollectorEnv:
    """The collector's environment: its partner's name (lower case) and its variables."""

    partner: str
    values: dict[str, str]


def collector_env(values: dict[str, str]) -> CollectorEnv | None:
    """``values`` as the collector's settings, when they name a ``<PARTNER>_SFTP_HOSTNAME``."""
    found = [m.group(1) for m in map(HOST_KEY.match, values) if m]
    return CollectorEnv(found[0].lower(), values) if len(found) == 1 else None


@dataclass
class Lines:
    mapped: list[str]
    not_mapped: list[str]
    todo: list[str]


def collect_sections(
    where: str, env: CollectorEnv, ref: Callable[[str], str], lines: Lines
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(``collect:``, ``destinations.drive``) of ``env``; ``ref`` names a secret as an sm:// reference."""
    name, values = env.partner, env.values
    prefix = f"{name.upper()}_SFTP_"
    partner: dict[str, Any] = {
        "host": values.get(f"{prefix}HOSTNAME") or "sftp.example.com",
        "username": values.get(f"{prefix}USERNAME") or "user",
        "known_hosts": ref(f"offsite-sftp-{name}-known-hosts"),
    }
    for key, field in (("PASSWORD", "password"), ("PRIVATE_KEY", "private_key")):
        if values.get(prefix + key) is not None:
            secret = f"offsite-sftp-{name}-{field.replace('_', '-')}"
            partner[field] = ref(secret)
            lines.not_mapped.append(
                f"{where}: {prefix}{key}: not copied (secrets never go into the YAML); put it into secret "
                f"{secret}: gcloud secrets versions add {secret} --data-file=-"
            )
    if "password" not in partner and "private_key" not in partner:
        partner["password"] = ref(f"offsite-sftp-{name}-password")
        lines.todo.append(f"collect.partners.{name}: {where} has no {prefix}PASSWORD or {prefix}PRIVATE_KEY; set one")
    export_id = values.get(f"{prefix}EXPORT_ID")
    job = {
        "name": name,
        "partner": name,
        "directory": f"/{export_id}" if export_id else "/",
        "destinations": [f"drive:{name}"],
        "folder": "/",
        **OLD_SCHEDULE,
    }
    drive = {
        "folder_id": values.get("GOOGLE_DRIVE_FOLDER_ID") or "root",
        "auth": {
            "method": "oauth",
            "client_id": values.get("GOOGLE_CLIENT_ID") or "CLIENT_ID.apps.googleusercontent.com",
            "client_secret": ref(_drive_secret(name, "GOOGLE_CLIENT_SECRET")),
            "refresh_token": ref(_drive_secret(name, "GOOGLE_REFRESH_TOKEN")),
        },
    }
    _report(where, name, prefix, values, partner, job, lines)
    return {"partners": {name: partner}, "jobs": [job]}, {name: drive}


def _report(
    where: str,
    name: str,
    prefix: str,
    values: dict[str, str],
    partner: dict[str, Any],
    job: dict[str, Any],
    lines: Lines,
) -> None:
    lines.mapped.append(
        f"{where}: {prefix}HOSTNAME/USERNAME → collect.partners.{name} (host {partner['host']}); {prefix}EXPORT_ID → "
        f"collect.jobs[{name}].directory {job['directory']}; GOOGLE_DRIVE_FOLDER_ID → destinations.drive.{name}, the "
        "files straight into that folder (folder: '/'); daily 06:00 America/New_York as the old job ran"
    )
    lines.todo.append(
        f"secret offsite-sftp-{name}-known-hosts: the old job's known_hosts file (e.g. Toast_SFTP_known_hosts): "
        f"gcloud secrets versions add offsite-sftp-{name}-known-hosts --data-file=<that file>"
    )
    lines.todo.append(
        f"collect.jobs[{name}].calendar: copy the holidays of the old job's config.yaml (holidays: [YYYY-MM-DD, …]; "
        "weekdays: [mon, …] if it skipped weekends)"
    )
    for key in ("GOOGLE_CLIENT_SECRET", "GOOGLE_REFRESH_TOKEN"):
        secret = _drive_secret(name, key)
        lines.not_mapped.append(
            f"{key}: not copied; put it into secret {secret}: gcloud secrets versions add {secret} --data-file=-"
        )
    for key in sorted(
        set(values)
        - {prefix + k for k in ("HOSTNAME", "USERNAME", "PASSWORD", "PRIVATE_KEY", "EXPORT_ID")}
        - set(GOOGLE_KEYS)
    ):
        lines.not_mapped.append(f"{where}: {key}: not a setting of the old collector offsite knows")


def _drive_secret(name: str, key: str) -> str:
    """The secret a Drive credential variable goes to: GOOGLE_REFRESH_TOKEN → offsite-drive-NAME-refresh-token."""
    return f"offsite-drive-{name}-{key.removeprefix('GOOGLE_').lower().replace('_', '-')}"
