"""What BigQuery is asked for when offsite exports: each format's compression, the extract job's
configuration, the ``EXPORT DATA`` statement of a dated query, and the one destination URI read
back from a job's configuration (re-attaching a redelivered export checks it)."""

from __future__ import annotations

import re
from typing import Any

from shared.errors import PermanentError

# What each format is compressed with, in extract jobs and EXPORT DATA alike.
COMPRESSION = {"PARQUET": "SNAPPY", "AVRO": "DEFLATE", "CSV": "GZIP", "NEWLINE_DELIMITED_JSON": "GZIP"}
# EXPORT DATA names the formats differently from extract jobs.
EXPORT_DATA_FORMAT = {"PARQUET": "PARQUET", "AVRO": "AVRO", "CSV": "CSV", "NEWLINE_DELIMITED_JSON": "JSON"}

_EXPORT_URI = re.compile(r"\buri\s*=\s*'(gs://[^'\\]+)'", re.IGNORECASE)


def destination_of(configuration: dict[str, Any]) -> str | None:
    """The one destination URI of a job's configuration: an extract's ``destinationUris[0]`` or the
    ``uri='…'`` option of an EXPORT DATA statement (offsite writes exactly one of each)."""
    extract = configuration.get("extract") or {}
    uris = extract.get("destinationUris") or ([extract["destinationUri"]] if extract.get("destinationUri") else [])
    if uris:
        return str(uris[0])
    query = str((configuration.get("query") or {}).get("query") or "")
    match = _EXPORT_URI.search(query) if "EXPORT DATA" in query.upper() else None
    return match.group(1) if match else None


def extract_job_config(fmt: str) -> Any:
    """Extract settings per format: Parquet SNAPPY, Avro DEFLATE + logical types, CSV/NDJSON GZIP."""
    from google.cloud import bigquery

    config = bigquery.ExtractJobConfig(destination_format=fmt, compression=COMPRESSION[fmt])
    if fmt == "CSV":
        config.print_header = True
    if fmt == "AVRO":
        config.use_avro_logical_types = True
    return config


def export_data_sql(uri: str, fmt: str, query: str) -> str:
    """``EXPORT DATA OPTIONS(uri, format, compression, overwrite=true, header=true) AS <query>``.

    ``header`` only matters for CSV; the URI is ours (bucket + run folder + file pattern) and
    may not hold a quote or backslash (PermanentError): it is pasted into the statement.
    """
    if "'" in uri or "\\" in uri:
        raise PermanentError(f"export URI {uri!r} contains a quote or backslash")
    options = [
        f"uri='{uri}'",
        f"format='{EXPORT_DATA_FORMAT[fmt]}'",
        f"compression='{COMPRESSION[fmt]}'",
        "overwrite=true",
    ]
    if fmt == "CSV":
        options.append("header=true")
    if fmt == "AVRO":
        options.append("use_avro_logical_types=true")
    return f"EXPORT DATA OPTIONS({', '.join(options)}) AS\n{query}"
