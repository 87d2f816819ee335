"""The configuration the local stack writes for its functions: ``<root>/config.yaml``.

It points every destination at the stack's own servers. A user overlay (``offsite dev up
--config FILE``) is deep-merged over it (mappings merge, everything else replaces), and the
result must load with :func:`shared.config_load.load_config`: a bad overlay stops ``up``
before any process starts.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from devstack.errors import StackError
from shared.config import Config
from shared.config_load import load_config
from shared.errors import ConfigError

PROJECT = "offsite-local"
BUCKET = "offsite-exports"
SHARD_SIZE_BYTES = 4_000_000  # small enough that the 200k-row sample table shards
MIRRORED_BUCKET = "offsite-local-files"  # the sample bucket mirror (docs/mirror.md; `offsite dev seed` fills it)
COLLECT_JOB = "toast"  # the sample collect job: the stack's sshd as the partner
COLLECT_OUTBOX = "partner-toast/outbox"  # under the SFTP data directory
COLLECT_PROCESSED = "partner-toast/processed"


def generated(
    *,
    box_port: int,
    box_token: str,
    sftp_port: int,
    sftp_user: str,
    sftp_key: Path,
    known_hosts: Path,
    sftp_directory: Path,
    webhook_port: int,
    drive: dict[str, Any] | None = None,
    app_db: Path | None = None,
) -> dict[str, Any]:
    """The stack's config; ``drive``: destination ``drive:reports`` (devstack.drivestack), if started."""
    raw: dict[str, Any] = {
        "project": PROJECT,
        "bucket": BUCKET,
        "shard_size_bytes": SHARD_SIZE_BYTES,
        "datasets": [
            {
                "name": "sales",
                "destinations": ["box", "sftp:local"],
                # the restore drill (shared/restore/drill.py): `offsite restore-drill run sales`
                "restore_drill": {"schedule": "0 6 * * *", "sample": 2, "to": "drill_scratch", "from": "sftp:local"},
            }
        ],
        "exports": [
            {
                "name": "orders_daily",
                "sql": f"SELECT * FROM `{PROJECT}.sales.orders` WHERE order_date = {{date}}",
                "format": "CSV",
                "file_name": "Orders_{YYYYMMDD}-*.csv.gz",
                "destinations": ["sftp:local"],
            }
        ],
        "buckets": [{"name": MIRRORED_BUCKET, "destinations": ["box", "sftp:local"], "delete": "mirror"}],
        "destinations": {
            "box": _box(box_port, box_token),
            "sftp": {"local": _sftp_partner(sftp_port, sftp_user, sftp_key, known_hosts, sftp_directory)},
        },
        # The stack's sshd doubles as a partner whose outbox is collected into Box (docs/collect.md);
        # `offsite dev seed` puts sample files there (devstack/collect_seed.py).
        "collect": {"jobs": [_collect_job(sftp_directory)]},
        "alerts": {"slack_webhook_url": f"http://127.0.0.1:{webhook_port}/hook"},
        "pubsub": {"max_delivery_attempts": 5, "minimum_backoff_s": 1, "maximum_backoff_s": 10},
        "verify": {"deadline_minutes": 120},
    }
    if drive is not None:
        raw["destinations"]["drive"] = {"reports": drive}
    if app_db is not None:  # the sample SQLite app `offsite dev seed` creates (devstack/sample_app.py)
        raw["ingest"] = {
            "sqlite_path": str(app_db.absolute()),
            "dataset": "app_mirror",
            "hash_key": "local-ingest-hash-key",
            "snapshot_uri": f"gs://{BUCKET}-state/snapshots/app.sqlite",
            "tables": {"chat_history": {"mode": "append"}, "users": {"hashed_columns": ["api_key"], "lag_s": 0}},
        }
    return raw


def _box(port: int, token: str) -> dict[str, Any]:
    """Destination ``box``: the stack's Box API server, with its developer token."""
    box = f"http://127.0.0.1:{port}"
    auth = {"method": "developer_token", "developer_token": token}
    return {
        "base_url": box,
        "upload_url": f"{box}/api",
        "oauth_url": f"{box}/oauth2",
        "root_folder_id": "0",
        "auth": auth,
    }


def _sftp_partner(port: int, user: str, key: Path, known_hosts: Path, directory: Path) -> dict[str, Any]:
    """Partner ``local``: the stack's sshd, its host key pinned through ``known_hosts``."""
    return {
        "host": "127.0.0.1",
        "port": port,
        "username": user,
        "private_key": f"file:{key}",
        "known_hosts": f"file:{known_hosts}",
        "directory": str(directory.absolute()),
    }


def _collect_job(sftp_directory: Path) -> dict[str, Any]:
    """The job collecting ``sftp:local``'s outbox into Box on weekdays that are not holidays."""
    return {
        "name": COLLECT_JOB,
        "partner": "local",
        "directory": str((sftp_directory / COLLECT_OUTBOX).absolute()),
        "include": ["*.csv"],
        "destinations": ["box"],
        "schedule": "0 6 * * *",
        "time_zone": "America/New_York",
        "calendar": {"holidays": ["2026-12-25", "2027-01-01"]},
        "post_action": "move",
        "processed_dir": str((sftp_directory / COLLECT_PROCESSED).absolute()),
    }


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def read_overlay(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise StackError(f"config overlay {path} does not exist", "pass an existing YAML file to --config") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        raise StackError(f"config overlay {path} is not valid YAML{at}", "fix the YAML syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise StackError(f"config overlay {path}: top level is a {type(data).__name__}", "write a mapping (key: value)")
    return data


def write(path: Path, raw: dict[str, Any], *, overlay_source: str = "") -> Config:
    """Write ``raw`` to ``path`` and load it back exactly as the functions will (empty environ)."""
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    path.chmod(0o600)  # holds the Box token
    try:
        return load_config(path, environ={})
    except ConfigError as exc:
        cause = f"config overlay {overlay_source}: {exc}" if overlay_source else f"generated config {path}: {exc}"
        raise StackError(cause, "fix the overlay file" if overlay_source else "this is a bug in devstack") from None
