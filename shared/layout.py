"""Where things live: GCS run folders, file names, and each destination's remote paths.

GCS (one folder per run and source):
  dataset mode: ``{prefix}/{dataset}/{table}/{YYYYMMDD}/{run_id}/{table}_{YYYYMMDD}-000000000000.parquet``
  query mode:   ``{prefix}/_queries/{export}/{YYYYMMDD}/{run_id}/Product_{YYYYMMDD}-000000000000.csv.gz``
  plus ``_run.json`` (written before the job: routing) and ``_manifest.json`` (written last).
Each destination also receives the manifest, after the run's data files, with every file's SHA-1
filled in (``_manifest.delivered.json`` in GCS): as ``_manifest.json`` in a run's own folder,
``_manifest_{run_id}.json`` in a folder shared with other runs of one source (dated query folders,
query runs in a flat root), ``_manifest_{run_id}_{dataset}.{table}.json`` for a table in a flat root.
Destinations, by the layout their backend declares (``Abilities.layout``):
  ``gcp_tree`` (Box): ``GCP/bigquery/{dataset}/{table}/{YYYYMMDD}/{run_id}/`` and ``GCP/exports/{export}/{YYYYMMDD}/``;
  ``nested`` (SFTP): ``{dataset}/{table}/{YYYYMMDD}/{run_id}/`` and ``{export}/{YYYYMMDD}/`` under the root;
  ``flat`` (an SFTP partner with ``flat: true``): the root itself.
Remote file names are always the GCS file names.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from dataclasses import dataclass

from shared.config.types import TABLE_RE
from shared.destinations.base import FolderLayout
from shared.message_fields import DATASET_RE, IDENT_RE, RUN_ID_RE
from shared.messages import Source, TableExport

MANIFEST_NAME = "_manifest.json"
DELIVERED_MANIFEST_NAME = "_manifest.delivered.json"  # the manifest with every file's SHA-1: what destinations get
RUN_NAME = "_run.json"
QUERY_SEGMENT = "_queries"
EXTENSIONS = {"PARQUET": "parquet", "AVRO": "avro", "CSV": "csv.gz", "NEWLINE_DELIMITED_JSON": "json.gz"}


def yyyymmdd(date: dt.date) -> str:
    return date.strftime("%Y%m%d")


def default_file_name(table: str, fmt: str) -> str:
    """Dataset mode's file name template: ``orders_{YYYYMMDD}-*.parquet``."""
    return f"{table}_{{YYYYMMDD}}-*.{EXTENSIONS[fmt]}"


def render_file_name(template: str, *, date: dt.date, export: str = "", table: str = "") -> str:
    """Fill ``{YYYYMMDD}``, ``{date}``, ``{export}``, ``{table}``; the ``*`` stays for the shard number."""
    return (
        template.replace("{YYYYMMDD}", yyyymmdd(date))
        .replace("{date}", date.isoformat())
        .replace("{export}", export)
        .replace("{table}", table)
    )


def shard_name(pattern: str, shard: int) -> str:
    """BigQuery's wildcard rule: ``*`` becomes a 12-digit zero-padded shard number."""
    return pattern.replace("*", f"{shard:012d}", 1)


@dataclass(frozen=True)
class RunFolder:
    """One run's folder in GCS, parsed from or rendered to an object name."""

    export_prefix: str
    source: Source
    date: dt.date
    run_id: str

    @property
    def prefix(self) -> str:
        if self.source.mode == "table":
            middle = f"{self.source.dataset}/{self.source.table}"
        else:
            middle = f"{QUERY_SEGMENT}/{self.source.export}"
        return f"{self.export_prefix}/{middle}/{yyyymmdd(self.date)}/{self.run_id}/"

    @property
    def manifest_name(self) -> str:
        return self.prefix + MANIFEST_NAME

    @property
    def run_name(self) -> str:
        return self.prefix + RUN_NAME

    @property
    def delivered_manifest_name(self) -> str:
        return self.prefix + DELIVERED_MANIFEST_NAME

    def export_task(self, fmt: str, destinations: tuple[str, ...], file_name: str) -> TableExport:
        """The table-exports message that exports into this folder (what fan_out publishes and
        ``_run.json`` holds)."""
        return TableExport(
            run_id=self.run_id,
            date=self.date,
            source=self.source,
            format=fmt,
            destinations=destinations,
            prefix=self.prefix,
            file_name=file_name,
        )


def run_folder_of(name: str, head: str) -> str:
    """The run folder part of an object name under ``head`` (``exports/``), slash-ended, without
    checking it (``exports/sales/orders/20250108/r1/x.parquet`` → ``exports/sales/orders/20250108/r1/``):
    the unit a listing in parts never splits (:mod:`shared.listing_parts`). A name too short to
    be in a run folder is its own unit."""
    parts = name[len(head) :].split("/")
    return head + "/".join(parts[:4]) + "/" if len(parts) >= 5 else name


def parse_object_name(name: str, export_prefix: str, project: str = "") -> tuple[RunFolder, str] | None:
    """``exports/sales/orders/20250108/r1/x.parquet`` → (RunFolder, "x.parquet"); None if not a run file."""
    head = export_prefix.strip("/") + "/"
    if not name.startswith(head):
        return None
    parts = name[len(head) :].split("/")
    if len(parts) != 5:
        return None
    first, second, day, run_id, filename = parts
    if not filename or not RUN_ID_RE.match(run_id):
        return None
    if not (IDENT_RE if first == QUERY_SEGMENT else TABLE_RE).match(second):
        return None
    try:
        date = dt.datetime.strptime(day, "%Y%m%d").date()
    except ValueError:
        return None
    if first == QUERY_SEGMENT:
        source = Source(mode="query", project=project, export=second)
    elif DATASET_RE.match(first):
        source = Source(mode="table", project=project, dataset=first, table=second)
    else:
        return None
    return RunFolder(export_prefix.strip("/"), source, date, run_id), filename


def is_data_file(filename: str) -> bool:
    """Control files (``_run.json``, ``_manifest.json``, verify markers) start with '_'."""
    return not filename.startswith("_")


@dataclass(frozen=True)
class RemoteFolder:
    """Where a run's files go at one destination.

    ``exclusive`` is False when the folder is shared with other runs (flat SFTP layouts,
    dated query folders): then only names matching ``name_pattern`` belong to this run.
    ``manifest_key`` names the run's table where the folder also holds the run's other tables
    (a flat root), so each table's manifest copy has a name of its own.
    """

    path: str
    exclusive: bool
    name_pattern: str = "*"
    manifest_key: str = ""

    def owns(self, filename: str) -> bool:
        return self.exclusive or fnmatch.fnmatchcase(filename, self.name_pattern)


def remote_manifest_name(folder: RemoteFolder, run_id: str) -> str:
    """The name of the run's ``_manifest.json`` copy at a destination: ``_manifest.json`` in a
    run's own folder; ``_manifest_{run_id}.json`` in a folder shared with other runs of one source
    (dated query folders, a query run in a flat root); ``_manifest_{run_id}_{dataset}.{table}.json``
    for a table in a flat root, which also holds the run's other tables. So neither runs nor a
    run's tables overwrite each other's manifest."""
    if folder.exclusive:
        return MANIFEST_NAME
    return f"_manifest_{run_id}_{folder.manifest_key}.json" if folder.manifest_key else f"_manifest_{run_id}.json"


def flat_manifest_key(source: Source) -> str:
    """How a flat root's manifest copy names its source: ``sales.orders`` for a table, since a
    dataset run exports several tables under one run id. A query run exports one export (one
    request, one run id), so its copy keeps ``_manifest_{run_id}.json``, as delivered before."""
    return f"{source.dataset}.{source.table}" if source.mode == "table" else ""


def is_manifest_copy(filename: str) -> bool:
    """A destination's copy of a run manifest (see :func:`remote_manifest_name`)."""
    return filename == MANIFEST_NAME or (filename.startswith("_manifest_") and filename.endswith(".json"))


def remote_folder(layout: FolderLayout, run: RunFolder, file_name_template: str) -> RemoteFolder:
    """The folder (relative to the destination root) receiving ``run``'s files, in the
    destination's ``layout`` (``destination.abilities.layout``)."""
    src, day = run.source, yyyymmdd(run.date)
    pattern = render_file_name(file_name_template, date=run.date, export=src.export or "", table=src.table or "")
    if layout == "gcp_tree":
        if src.mode == "table":
            return RemoteFolder(f"GCP/bigquery/{src.dataset}/{src.table}/{day}/{run.run_id}", True)
        return RemoteFolder(f"GCP/exports/{src.export}/{day}", False, pattern)
    if layout == "flat":
        return RemoteFolder("", False, pattern, flat_manifest_key(src))
    if src.mode == "table":
        return RemoteFolder(f"{src.dataset}/{src.table}/{day}/{run.run_id}", True)
    return RemoteFolder(f"{src.export}/{day}", False, pattern)
