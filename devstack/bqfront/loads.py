"""Load jobs from GCS: bqemulator loads uploaded files but cannot read ``gs://`` URIs (it wants a
local directory, ``BQEMU_GCS_LOCAL_ROOT``), and its own CSV/JSON/Avro loads are not faithful
(gzip not read; BYTES kept as their base64 text; Avro fails with "Resource In Use"). The front
reads each source object from fake-gcs-server, parses it by BigQuery's conventions and the job's
schema (:mod:`devstack.bqfront.readback`: base64 BYTES, INT64/NUMERIC strings, "… UTC"
timestamps, an empty CSV field NULL and a quoted ``""`` the empty string), and hands bqemulator
a Parquet file load with the job's schema — the one format it loads exactly — with the job's
write disposition for the first file, then append.

Different from BigQuery: the files are loaded one by one, so a file that fails leaves the files
before it loaded (BigQuery's load job is atomic). ``*`` in a URI matches by prefix.
"""

from __future__ import annotations

import gzip
import io
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from google.api_core import exceptions as gexc

from devstack.bqfront.errors import JobFailure
from devstack.bqfront.formats import arrow_schema
from devstack.bqfront.readback import read_rows

SETTINGS_SKIPPED = ("sourceUris", "destinationTable")


def _objects(storage: Any, uri: str) -> list[tuple[str, str]]:
    if not uri.startswith("gs://") or "/" not in uri[5:]:
        raise JobFailure("invalid", f"Invalid source URI {uri!r}")
    bucket, name = uri[5:].split("/", 1)
    if "*" not in name:
        return [(bucket, name)]
    head = name.split("*", 1)[0]
    return sorted((bucket, b.name) for b in storage.list_blobs(bucket, prefix=head))


def as_parquet(data: bytes, fmt: str, settings: dict[str, Any]) -> bytes:
    """One source file as Parquet typed by the job's schema (Parquet passes through)."""
    if fmt == "PARQUET":
        return data
    from google.cloud.bigquery import SchemaField

    schema = (settings.get("schema") or {}).get("fields")
    if not schema:
        raise JobFailure("invalid", "The local BigQuery front loads CSV/JSON/Avro only with an explicit schema")
    if data[:2] != b"\x1f\x8b" and fmt in ("CSV", "NEWLINE_DELIMITED_JSON"):
        data = gzip.compress(data)  # read_rows takes exports as written: gzip-compressed text
    try:
        rows = read_rows(fmt, data, schema)
    except (ValueError, KeyError, AssertionError) as exc:
        raise JobFailure("invalid", f"Error while reading data, error message: {exc}") from None
    table = pa.Table.from_pylist(rows, schema=arrow_schema([SchemaField.from_api_repr(f) for f in schema]))
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def run_load(config: dict[str, Any], project: str, storage: Any, bq: Any) -> dict[str, Any]:
    """Load ``config['sourceUris']`` into ``config['destinationTable']``; the job's statistics."""
    from google.cloud import bigquery

    dest = config["destinationTable"]
    table = f"{dest.get('projectId', project)}.{dest['datasetId']}.{dest['tableId']}"
    settings = {k: v for k, v in config.items() if k not in SETTINGS_SKIPPED}
    objects = [obj for uri in config.get("sourceUris") or [] for obj in _objects(storage, uri)]
    if not objects:
        raise JobFailure("notFound", f"Not found: URI {', '.join(config.get('sourceUris') or [])}")
    files = total_bytes = 0
    for index, (bucket, name) in enumerate(objects):
        try:
            data = storage.bucket(bucket).blob(name).download_as_bytes()
        except gexc.NotFound:
            raise JobFailure("notFound", f"Not found: URI gs://{bucket}/{name}") from None
        total_bytes += len(data)
        job_config = bigquery.LoadJobConfig.from_api_repr({"load": dict(settings)})
        data = as_parquet(data, str(settings.get("sourceFormat") or "CSV"), settings)
        job_config.source_format = "PARQUET"
        if index:
            job_config.write_disposition = "WRITE_APPEND"
        try:
            bq.load_table_from_file(io.BytesIO(data), table, job_config=job_config, size=None).result(timeout=300)
        except gexc.GoogleAPICallError as exc:
            raise JobFailure("invalid", f"loading gs://{bucket}/{name}: {exc.message}") from None
        files += 1
    rows = bq.get_table(table).num_rows
    return {"load": {"inputFiles": str(files), "inputFileBytes": str(total_bytes), "outputRows": str(rows)}}
