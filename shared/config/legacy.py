"""The systems offsite replaces, in offsite's terms: ``offsite config import``.

Four inputs are understood:

- **bq-sftp-export** (seed 003): its JSON config ``{"sftp": {...}, "gcs": {...}, "exports":
  {NAME: {"query": SQL}}}``. Each export becomes a query export delivered to one SFTP partner
  with the seed's flat placement (files directly in ``sftp.directory``), on the seed DAG's
  schedule (``0 6 * * *``) with ``date: yesterday`` (a daily Airflow run's ``ds``). The SQL is
  kept as written: ``'{date}'`` in quotes means the date (docs/exports.md).
- **bq-to-box-sync** (seed 000): its dataset list, as one of: a JSON/YAML list of dataset names
  or ``{dataset, schedule, time_zone}`` objects; the JSON of ``gcloud scheduler jobs list
  --format=json`` (each job's ``/sync/DATASET`` URI or ``{"dataset": …}`` body); or text, one
  ``DATASET [five cron fields]`` per line. Each becomes a dataset backed up to Box.
- **the SQLite → BigQuery sync** (a ``db_sync.py``): its ``.env`` becomes the ``ingest:``
  section (:mod:`shared.config.legacy_sync`).
- **the SFTP → Drive collector job**: its environment becomes a collect job, its partner and a
  Drive destination (:mod:`shared.config.legacy_collector`).

Nothing secret is copied: credentials become Secret Manager references under new names
(``offsite-…``) that the report says how to fill, and no name of a resource the old systems
own (:data:`LEGACY_RESOURCES`: buckets, secrets) is reused, so a first ``terraform apply``
cannot collide with them. :func:`convert` returns the config and the report lines; the
caller validates the config like any other.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from shared.config.legacy_collector import CollectorEnv, Lines, collect_sections, collector_env
from shared.config.legacy_sync import SyncEnv, ingest_section, parse_env, sync_env
from shared.config.types import NAME_RE, PARTNER_RE

# Resources the old systems own (seed 000: buckets mirrored under GCP/storage/, the Box JWT
# secret; seed 003: the buckets its docs export to). Terraform creates offsite's bucket, state
# bucket and every secret the config references, so the config must name none of these.
LEGACY_RESOURCES: dict[str, frozenset[str]] = {
    "bucket": frozenset(
        {"bqx-ml-exports", "bqx-ml-models", "bqx-ml-artifacts", "bqx-ml-results"}
        | {"your-bucket-name", "your-bucket", "bucket"}
    ),
    "secret": frozenset({"oxo-box-jwt-config"}),
}
SEED_003_SCHEDULE = "0 6 * * *"  # the sftp_export DAG
_PROJECT_IN_SQL = re.compile(r"`([a-z][a-z0-9-]{4,28}[a-z0-9])\.[A-Za-z0-9_]+\.[^`]+`")
_SYNC_URI = re.compile(r"/sync/([A-Za-z_][A-Za-z0-9_]*)/?$")
_JOB_PROJECT = re.compile(r"^projects/([^/]+)/")


class ImportProblem(ValueError):
    """The input is not a config this importer understands; the message says what was expected."""


@dataclass
class Imported:
    """The converted config (plain data, as a YAML file would hold it) and what happened."""

    config: dict[str, Any] = field(default_factory=dict)
    mapped: list[str] = field(default_factory=list)
    not_mapped: list[str] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)


def secret_ref(project: str, name: str) -> str:
    return f"sm://projects/{project}/secrets/{name}/versions/latest"


def legacy_collisions(config: dict[str, Any]) -> list[str]:
    """``field: 'name'`` for every bucket or secret of ``config`` that an old system already owns."""
    found = []
    for key in ("bucket", "state_bucket"):
        if config.get(key) in LEGACY_RESOURCES["bucket"]:
            found.append(f"{key}: {config[key]!r}")
    for path, value in _strings(config, ""):
        match = re.match(r"^sm://projects/[^/]+/secrets/([^/]+)/", value)
        if match and match.group(1) in LEGACY_RESOURCES["secret"]:
            found.append(f"{path}: secret {match.group(1)!r}")
    return found


def _strings(node: Any, path: str) -> list[tuple[str, str]]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _strings(v, f"{path}.{k}" if path else str(k))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _strings(v, f"{path}[{i}]")]
    return [(path, node)] if isinstance(node, str) else []


# ---- reading the inputs ----------------------------------------------------------------------


def parse(text: str, where: str) -> Any:
    """A file's content: a bq-sftp-export config (dict), the SQLite sync's ``.env`` (SyncEnv),
    a dataset list (list), or text lines (str)."""
    values = parse_env(text)
    env = (sync_env(values) or collector_env(values)) if values else None
    if env is not None:
        return env
    try:
        data = yaml.safe_load(text)  # JSON is YAML
    except yaml.YAMLError:
        if text.lstrip().startswith(("{", "[")):  # meant as JSON (a config, a job list): say where it breaks
            try:
                json.loads(text)
            except json.JSONDecodeError as exc:
                raise ImportProblem(f"{where}: not valid JSON ({exc})") from None
        data = text
    if isinstance(data, dict) and {"sftp", "exports"} & set(data):
        return data
    if isinstance(data, list):
        return data
    if isinstance(data, str) or data is None:
        return text
    raise ImportProblem(
        f"{where}: not a bq-sftp-export config (a JSON object with 'sftp' and 'exports') nor a dataset list "
        "(a JSON/YAML list, `gcloud scheduler jobs list --format=json`, or one dataset per line)"
    )


# ---- the conversion --------------------------------------------------------------------------


def convert(inputs: list[tuple[str, Any]], *, project: str | None, bucket: str | None, partner: str) -> Imported:
    """``inputs`` (name, :func:`parse` result) → one offsite config and its report."""
    if not PARTNER_RE.match(partner):
        raise ImportProblem(f"--partner: {partner!r} must be lower-case letters, digits, '-' or '_'")
    out = Imported()
    datasets: list[dict[str, Any]] = []
    exports: list[dict[str, Any]] = []
    sftp: dict[str, Any] | None = None
    found_projects: list[str] = []
    collectors: list[tuple[str, CollectorEnv]] = []
    for where, data in inputs:
        if isinstance(data, SyncEnv):
            out.config["ingest"] = ingest_section(where, data, found_projects, out.mapped, out.not_mapped, out.todo)
        elif isinstance(data, CollectorEnv):
            collectors.append((where, data))
        elif isinstance(data, dict):
            sftp, gcs = _section(data, "sftp", where), _section(data, "gcs", where)
            exports += _exports(where, _section(data, "exports", where), partner, out, found_projects)
            if gcs.get("bucket"):
                out.not_mapped.append(
                    f"{where}: gcs.bucket {gcs['bucket']!r} is the old service's bucket; offsite writes to its own "
                    "(Terraform creates it, and creating an existing bucket fails)"
                )
            if gcs.get("expiration_days") is not None:
                days = _whole_number(gcs["expiration_days"], f"{where}: gcs.expiration_days")
                out.config["expiration_days"] = days
                out.mapped.append(f"{where}: gcs.expiration_days → expiration_days: {days}")
        else:
            datasets += _datasets(where, data, out, found_projects)
    project = project or (found_projects[0] if found_projects else None)
    if project is None:
        raise ImportProblem("--project: not given and no project found in the inputs (queries, scheduler jobs)")
    out.config = {"project": project, "bucket": bucket or f"{project}-offsite-exports", **out.config}
    out.mapped.insert(0, f"project: {project}; bucket: {out.config['bucket']} (new; offsite's own)")
    destinations: dict[str, Any] = {}
    if datasets:
        out.config["datasets"] = datasets
        destinations["box"] = _box(project, out)
    if exports:
        out.config["exports"] = exports
    if sftp is not None or exports:
        destinations["sftp"] = {partner: _partner(project, partner, sftp or {}, out)}
    for where, env in collectors:
        lines = Lines(out.mapped, out.not_mapped, out.todo)
        collect, drive = collect_sections(where, env, lambda name: secret_ref(project, name), lines)
        section = out.config.setdefault("collect", {"partners": {}, "jobs": []})
        section["partners"].update(collect["partners"])
        section["jobs"] += collect["jobs"]
        destinations.setdefault("drive", {}).update(drive)
    out.config["destinations"] = destinations
    collisions = legacy_collisions(out.config)
    if collisions:
        raise ImportProblem(f"{collisions[0]} belongs to an old system; name offsite's own (--bucket)")
    return out


def _section(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise ImportProblem(f"{where}: {key}: {_show(value)} is not an object")
    return value


def _whole_number(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip().isdigit():
        raise ImportProblem(f"{what}: {_show(value)} is not a whole number")
    return int(value)


def _exports(
    where: str, entries: dict[str, Any], partner: str, out: Imported, projects: list[str]
) -> list[dict[str, Any]]:
    result = []
    for name, entry in entries.items():
        query = (entry or {}).get("query") if isinstance(entry, dict) else None
        if not isinstance(query, str) or not query.strip():
            out.not_mapped.append(f"{where}: exports.{name}: no 'query'")
            continue
        if not NAME_RE.match(str(name)):
            out.not_mapped.append(f"{where}: exports.{name}: offsite export names are letters, digits and '_'")
            continue
        snapshot = "{date}" not in query
        projects += _PROJECT_IN_SQL.findall(query)
        result.append(
            {
                "name": name,
                "sql": query,
                **({"snapshot": True} if snapshot else {}),
                "schedule": SEED_003_SCHEDULE,
                "date": "yesterday",
                "format": "CSV",
                "destinations": [f"sftp:{partner}"],
            }
        )
        reads = (
            "snapshot: true: the query has no {date}, so each run exports all it returns, as the old service did"
            if snapshot
            else "SQL unchanged: '{date}' in quotes is the date"
        )
        out.mapped.append(
            f"{where}: exports.{name} → exports: {name} ({reads}; "
            f"schedule {SEED_003_SCHEDULE}, date: yesterday as a daily Airflow run's ds; CSV, gzip; "
            f"file names {name}_YYYYMMDD-000000000000.csv.gz — set file_name if the partner expects others)"
        )
    return result


def _datasets(where: str, data: Any, out: Imported, projects: list[str]) -> list[dict[str, Any]]:
    items: list[Any] = data if isinstance(data, list) else []
    if isinstance(data, str):
        for number, line in enumerate(data.splitlines(), 1):
            words = line.split("#", 1)[0].split()
            if words:
                items.append({"dataset": words[0], "schedule": " ".join(words[1:]) or None, "_line": number})
    result: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        entry = _dataset_entry(item, projects)
        label = f"{where}: line {item['_line']}" if isinstance(item, dict) and "_line" in item else f"{where}[{i}]"
        if entry is None or not NAME_RE.match(str(entry.get("name", ""))):
            out.not_mapped.append(f"{label}: {_show(item)} names no dataset offsite can export")
            continue
        if any(d["name"] == entry["name"] for d in result):
            out.not_mapped.append(f"{label}: dataset {entry['name']} is listed twice; the first entry is kept")
            continue
        result.append(entry)
        when = f"schedule {entry['schedule']}" if entry.get("schedule") else "no schedule (on request only)"
        out.mapped.append(f"{label}: {entry['name']} → datasets: {entry['name']} ({when}, PARQUET, to box)")
    return result


def _dataset_entry(item: Any, projects: list[str]) -> dict[str, Any] | None:
    if isinstance(item, str):
        return {"name": item, "destinations": ["box"]}
    if not isinstance(item, dict):
        return None
    name = item.get("dataset") or item.get("name")
    target = item.get("httpTarget") or {}
    if target:  # a Cloud Scheduler job
        projects += _JOB_PROJECT.findall(str(item.get("name", "")))
        match = _SYNC_URI.search(str(target.get("uri", "")))
        name = match.group(1) if match else _body_dataset(target.get("body"))
    if not isinstance(name, str):
        return None
    entry: dict[str, Any] = {"name": name}
    if item.get("schedule"):
        entry["schedule"] = str(item["schedule"])
    zone = item.get("time_zone") or item.get("timeZone")
    if zone and zone != "UTC":
        entry["time_zone"] = str(zone)
    entry["destinations"] = ["box"]
    return entry


def _body_dataset(body: Any) -> str | None:
    try:
        value = json.loads(base64.b64decode(str(body or "")).decode() or "{}").get("dataset")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _box(project: str, out: Imported) -> dict[str, Any]:
    secret = "offsite-box-jwt-config"
    out.todo.append(
        "destinations.box.root_folder_id: set the id of the Box folder that holds GCP/ (bq-to-box-sync's: bqx-ml-v3, "
        "353414610676); it is '0' (the root) until you do"
    )
    out.todo.append(
        f"secret {secret}: the Box JWT app config; to reuse the old one: gcloud secrets versions access latest "
        f"--secret=oxo-box-jwt-config | gcloud secrets versions add {secret} --data-file=-"
    )
    return {"root_folder_id": "0", "auth": {"method": "jwt", "jwt_config": secret_ref(project, secret)}}


def _partner(project: str, partner: str, sftp: dict[str, Any], out: Imported) -> dict[str, Any]:
    host = sftp.get("host")
    result: dict[str, Any] = {
        "host": str(host or "sftp.example.com"),
        "port": _whole_number(sftp.get("port") or 22, "sftp.port"),
        "username": str(sftp.get("username") or "user"),
        "directory": str(sftp.get("directory") or "/"),
        "flat": True,
        "password": secret_ref(project, f"offsite-sftp-{partner}-password"),
        "known_hosts": secret_ref(project, f"offsite-sftp-{partner}-known-hosts"),
    }
    out.mapped.append(
        f"sftp (host {result['host']}, port {result['port']}, user {result['username']}, directory "
        f"{result['directory']}) → destinations.sftp.{partner}, flat: true (files directly in the directory, "
        "as bq-sftp-export placed them)"
    )
    for key in ("host", "username", "directory"):
        if not sftp.get(key):
            out.todo.append(f"destinations.sftp.{partner}.{key}: not in the input; set it")
    out.not_mapped.append(
        "sftp.password: not copied (secrets never go into the YAML); put it into secret "
        f'offsite-sftp-{partner}-password: printf %s "$SFTP_PASSWORD" | gcloud secrets versions add '
        f"offsite-sftp-{partner}-password --data-file=-"
    )
    out.todo.append(
        f"secret offsite-sftp-{partner}-known-hosts: the old service pinned no host key and offsite always does; "
        f"ssh-keyscan -p {result['port']} {result['host']} > known_hosts, check the key with the partner, then "
        f"gcloud secrets versions add offsite-sftp-{partner}-known-hosts --data-file=known_hosts"
    )
    return result


def _show(value: Any) -> str:
    text = json.dumps({k: v for k, v in value.items() if k != "_line"} if isinstance(value, dict) else value)
    return text if len(text) <= 80 else text[:77] + "..."
