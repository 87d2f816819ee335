"""The SQLite → BigQuery sync offsite's ingest replaces (a ``db_sync.py`` in the app), in
offsite's terms, for ``offsite config import app.env``.

Its settings are environment variables in a ``.env`` file: ``BQ_PROJECT_NAME`` or
``BIGQUERY_PROJECT_ID`` (the project), ``BQ_DATASET_NAME`` or ``BIGQUERY_DATASET_ID`` (the
dataset), ``DB_FILE`` (the SQLite file) and ``GOOGLE_APPLICATION_CREDENTIALS`` (a key file).
They become the ``ingest:`` section on the old sync's schedule (every 15 minutes, a full sync
daily at 07:30 IST), without its tracking table ``bq_sync_tracking``: offsite keeps its
watermarks in BigQuery (``_offsite_sync_state``), so its first run reads every row once
(merged by key, appends skip rows already there: nothing doubles) and goes on incrementally.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.config.types import DATASET_RE

ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")
PROJECT_KEYS = ("BQ_PROJECT_NAME", "BIGQUERY_PROJECT_ID")
DATASET_KEYS = ("BQ_DATASET_NAME", "BIGQUERY_DATASET_ID")
KNOWN = (*PROJECT_KEYS, *DATASET_KEYS, "DB_FILE")
TRACKING_TABLE = "bq_sync_tracking"
OLD_SCHEDULE = {"schedule": "*/15 * * * *", "full_schedule": "30 7 * * *", "time_zone": "Asia/Kolkata"}


@dataclass(frozen=True)
class SyncEnv:
    """The old sync's ``.env``: its variables, by name."""

    values: dict[str, str]


def parse_env(text: str) -> dict[str, str] | None:
    """``KEY=VALUE`` lines (``#`` comments, blank lines, ``export``, quoted values) as a dict;
    None for any other text."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = ENV_LINE.match(line)
        if match is None:
            return None
        value = match.group(2)
        if value[:1] in "\"'" and value[-1:] == value[:1] and len(value) > 1:
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].strip()
        values[match.group(1)] = value
    return values or None


def sync_env(values: dict[str, str]) -> SyncEnv | None:
    """``values`` as the old sync's settings, when they name at least one of its variables."""
    return SyncEnv(values) if set(KNOWN) & set(values) else None


def ingest_section(
    where: str, env: SyncEnv, projects: list[str], mapped: list[str], not_mapped: list[str], todo: list[str]
) -> dict[str, object]:
    """The ``ingest:`` section of ``env``; the project found goes to ``projects``."""
    values = env.values
    project = next((values[k] for k in PROJECT_KEYS if values.get(k)), None)
    if project:
        projects.append(project)
    dataset = next((values[k] for k in DATASET_KEYS if values.get(k)), None)
    section: dict[str, object] = {
        "sqlite_path": values.get("DB_FILE") or "/path/to/app.db",
        "dataset": dataset if dataset and DATASET_RE.match(dataset) else "app_mirror",
        "exclude": [TRACKING_TABLE],
        **OLD_SCHEDULE,
    }
    mapped.append(
        f"{where}: {'/'.join(DATASET_KEYS)} → ingest.dataset: {section['dataset']}; DB_FILE → ingest.sqlite_path: "
        f"{section['sqlite_path']}; the old schedule (every 15 min, full daily 07:30 IST) → ingest.schedule, "
        f"full_schedule, time_zone; {TRACKING_TABLE} excluded (offsite keeps its watermarks in BigQuery: the "
        "first run reads every row once, nothing doubles)"
    )
    if not values.get("DB_FILE"):
        todo.append(f"ingest.sqlite_path: {where} has no DB_FILE; set the app's SQLite file")
    if not dataset:
        todo.append(f"ingest.dataset: {where} names no dataset ({' or '.join(DATASET_KEYS)}); app_mirror until you do")
    elif not DATASET_RE.match(dataset):
        todo.append(f"ingest.dataset: {dataset!r} from {where} is not a BigQuery dataset id; app_mirror until you do")
    for key in sorted(set(values) - set(KNOWN)):
        why = (
            "offsite uses Application Default Credentials; keep it set where `offsite ingest run` runs"
            if key == "GOOGLE_APPLICATION_CREDENTIALS"
            else "not a setting of the old sync offsite knows"
        )
        not_mapped.append(f"{where}: {key}: {why}")
    return section
