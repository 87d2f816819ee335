"""One BigQuery load job with the manifest's exact schema, then the restored table compared with
the manifest: row count, schema (names, types, modes, nesting) and the per-column fingerprint."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from shared.errors import PermanentError
from shared.gcp import bq_jobs, fingerprint_job, partitions
from shared.gcp.bigquery import BigQueryWarehouse
from shared.gcp.fingerprint import differences
from shared.manifest import Manifest
from shared.restore.stage import OutOfTime

WRITE_DISPOSITIONS = {"empty": "WRITE_EMPTY", "truncate": "WRITE_TRUNCATE", "append": "WRITE_APPEND"}
# BigQuery: a project id may hold ``-``, ``.`` and ``:`` (domain-scoped), a dataset only letters,
# digits and ``_``, a table also ``-`` (restore's targets and the drill's scratch names)
TABLE_RE = re.compile(r"^[A-Za-z0-9_.:-]+\.[A-Za-z0-9_]+\.[A-Za-z0-9_-]+$")
# BigQuery answers a schema with legacy names; the manifest may hold either
TYPE_NAMES = {"INT64": "INTEGER", "FLOAT64": "FLOAT", "BOOL": "BOOLEAN", "STRUCT": "RECORD", "BIGDECIMAL": "BIGNUMERIC"}
LOAD_TIMEOUT_S = 3600.0


def parse_target(target: str) -> str:
    """``PROJECT.DATASET.TABLE``, checked; PermanentError naming the value otherwise."""
    if not TABLE_RE.match(target):
        raise PermanentError(
            f"restore --to: {target!r} is not PROJECT.DATASET.TABLE (a dataset of letters, digits"
            " and '_'; a table of those and '-')"
        )
    return target


def check_disposition(disposition: str) -> str:
    """One of WRITE_DISPOSITIONS' keys; PermanentError naming the value otherwise."""
    if disposition not in WRITE_DISPOSITIONS:
        raise PermanentError(
            f"restore --write-disposition: {disposition!r} is not one of {', '.join(WRITE_DISPOSITIONS)}"
        )
    return disposition


def load_job_config(manifest: Manifest, disposition: str) -> Any:
    """The load settings: the manifest's format and schema (never autodetect), CSV's header row,
    Avro's logical types, and the write disposition."""
    from google.cloud import bigquery

    check_disposition(disposition)
    config = bigquery.LoadJobConfig(
        source_format=manifest.format,
        schema=[bigquery.SchemaField.from_api_repr(f) for f in manifest.schema],
        write_disposition=WRITE_DISPOSITIONS[disposition],
        create_disposition="CREATE_IF_NEEDED",
        autodetect=False,
    )
    if manifest.format == "CSV":
        config.skip_leading_rows = 1  # offsite's CSV exports have a header
        config.allow_quoted_newlines = True
    if manifest.format == "AVRO":
        config.use_avro_logical_types = True
    return config


def run_load(
    client: Any,
    uris: list[str],
    target: str,
    manifest: Manifest,
    disposition: str,
    job_id: str,
    *,
    timeout_s: float | None = None,
) -> Any:
    """One load job of every staged file; raises PermanentError with BigQuery's reason on failure
    (a table that has rows under ``empty``: what to do instead); OutOfTime when the job is not
    done within ``timeout_s``."""
    config = load_job_config(manifest, disposition)

    def start() -> Any:
        return client.load_table_from_uri(uris, target, job_config=config, job_id=job_id, retry=bq_jobs.api_retry())

    job = bq_jobs.call(start, f"starting the load of {target}", every_api_error=True)
    waited = timeout_s or LOAD_TIMEOUT_S
    try:
        bq_jobs.call(lambda: job.result(timeout=waited), f"loading {target}", every_api_error=True)
    except TimeoutError:  # the library's wait for the job ran out
        raise OutOfTime(
            f"did not finish within the budget: load job {job_id} into {target} still running after {waited:.0f} s"
        ) from None
    except PermanentError:
        if (getattr(job, "error_result", None) or {}).get("reason") == "duplicate":  # BigQuery's 409 for WRITE_EMPTY
            raise PermanentError(
                f"restore: --to {target} already has rows; use --write-disposition truncate or append"
            ) from None
        raise
    return job


def normalized_schema(fields: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Names, types, modes and nesting only (descriptions, policy tags and the like are not compared)."""
    out = []
    for f in fields:
        kind = str(f.get("type", "")).upper()
        entry: dict[str, Any] = {
            "name": f["name"],
            "type": TYPE_NAMES.get(kind, kind),
            "mode": str(f.get("mode") or "NULLABLE").upper(),
        }
        if f.get("fields"):
            entry["fields"] = normalized_schema(f["fields"])
        out.append(entry)
    return out


@dataclass(frozen=True)
class Proof:
    """The restored table against the manifest; ``equal`` when nothing differs."""

    target: str
    rows: int
    problems: list[str] = field(default_factory=list)
    fingerprint_checked: bool = False

    @property
    def equal(self) -> bool:
        return not self.problems


def prove(wh: BigQueryWarehouse, target: str, manifest: Manifest) -> Proof:
    """Row count, schema and (when the manifest has one) the fingerprint of ``target``."""
    table = wh.client.get_table(target)
    problems = []
    want, got = normalized_schema(manifest.schema), normalized_schema([f.to_api_repr() for f in table.schema])
    if want != got:
        problems.append(f"schema differs: restored {got}, exported {want}")
    quoted = "`" + target.replace(":", ".") + "`" + partitions.every_row(table)  # a table restored into may require one
    fingerprint = fingerprint_job.compute(wh.client, quoted, [], manifest.schema, None, target)
    if fingerprint is None:
        problems.append("the restored table's fingerprint could not be computed")
        return Proof(target, -1, problems)
    rows = int(fingerprint["row_count"])
    if rows != manifest.row_count:
        problems.append(f"row count {rows}, the manifest says {manifest.row_count}")
    if manifest.fingerprint is not None:
        problems.extend(d for d in differences(manifest.fingerprint, fingerprint) if not d.startswith("row count"))
    return Proof(target, rows, problems, fingerprint_checked=manifest.fingerprint is not None)
