"""What an export job asks for: destination URIs and file settings, validated like BigQuery does.

Two sources: an extract job's ``configuration.extract`` and an ``EXPORT DATA OPTIONS(...)``
statement (see :mod:`devstack.bqfront.statement`). Every refusal is a
:class:`~devstack.bqfront.errors.JobFailure` with reason ``invalid`` and a message naming the
option, so the job ends DONE with ``status.errorResult`` as in BigQuery.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from devstack.bqfront.errors import JobFailure
from devstack.bqfront.formats import COMPRESSIONS, DEFAULT_COMPRESSION, FORMATS, FileSettings

_URI = re.compile(r"gs://(?P<bucket>[a-z0-9][a-z0-9._-]{1,220}[a-z0-9])/(?P<name>[^\r\n]+)\Z")
# EXPORT DATA's format names → extract's destinationFormat names
_SQL_FORMATS = {"CSV": "CSV", "JSON": "NEWLINE_DELIMITED_JSON", "AVRO": "AVRO", "PARQUET": "PARQUET"}


@dataclass(frozen=True)
class Destination:
    """One destination URI: bucket and object name, the name holding at most one ``*``."""

    uri: str
    bucket: str
    name: str

    @property
    def wildcard(self) -> bool:
        return "*" in self.name

    def shard(self, index: int) -> str:
        """Object name of shard ``index``: ``*`` → 12-digit zero-padded number, as BigQuery names them."""
        return self.name.replace("*", f"{index:012d}", 1) if self.wildcard else self.name


@dataclass(frozen=True)
class ExportSpec:
    destination: Destination
    files: FileSettings
    overwrite: bool = True


def parse_uri(uri: str) -> Destination:
    """A ``gs://bucket/name`` URI with at most one ``*``; JobFailure(invalid) otherwise."""
    match = _URI.match(uri or "")
    if match is None or uri.count("*") > 1 or "*" in match.group("bucket"):
        raise JobFailure("invalid", f"Invalid extract destination URI '{uri}'. Must be a valid Google Storage path.")
    return Destination(uri, match.group("bucket"), match.group("name"))


def file_settings(fmt: str, compression: str | None, header: bool, delimiter: str, logical: bool) -> FileSettings:
    """Validated FileSettings: known format, a compression that format allows, a one-character delimiter."""
    fmt = fmt.upper()
    if fmt not in FORMATS:
        raise JobFailure("invalid", f"Invalid destination format: {fmt}. Supported formats: {', '.join(FORMATS)}")
    chosen = (compression or DEFAULT_COMPRESSION[fmt]).upper()
    if chosen not in COMPRESSIONS[fmt]:
        allowed = ", ".join(COMPRESSIONS[fmt])
        raise JobFailure("invalid", f"Unsupported compression {chosen} for {fmt} export. Supported: {allowed}")
    if fmt == "CSV" and len(delimiter.encode("latin-1", "replace")) != 1:
        raise JobFailure("invalid", f"Invalid field delimiter {delimiter!r}: must be a single character")
    return FileSettings(fmt, chosen, header, delimiter, logical)


def from_extract(config: dict[str, Any]) -> ExportSpec:
    """ExportSpec of a ``configuration.extract`` (destinationUris / destinationUri, format, ...)."""
    uris = list(config.get("destinationUris") or ([config["destinationUri"]] if config.get("destinationUri") else []))
    if len(uris) != 1:
        raise JobFailure("invalid", f"The local BigQuery front supports exactly one destination URI, got {len(uris)}")
    delimiter = config.get("fieldDelimiter", ",")
    delimiter = "\t" if delimiter in ("\\t", "tab") else delimiter
    files = file_settings(
        str(config.get("destinationFormat") or "CSV"),
        config.get("compression"),
        _flag(config.get("printHeader"), True),
        delimiter,
        _flag(config.get("useAvroLogicalTypes"), False),
    )
    return ExportSpec(parse_uri(uris[0]), files)


def from_options(options: dict[str, Any]) -> ExportSpec:
    """ExportSpec of EXPORT DATA OPTIONS(uri, format, compression, overwrite, header, field_delimiter, ...)."""
    known = {"uri", "format", "compression", "overwrite", "header", "field_delimiter", "use_avro_logical_types"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise JobFailure("invalidQuery", f"Unknown option: {unknown[0]}")
    for required in ("uri", "format"):
        if required not in options:
            raise JobFailure("invalidQuery", f"Missing required option: {required}")
    uri = str(options["uri"])
    if uri.count("*") != 1:
        raise JobFailure("invalidQuery", f"Invalid value for option uri: {uri!r} must contain exactly one '*'")
    fmt = str(options["format"]).upper()
    if fmt not in _SQL_FORMATS:
        raise JobFailure("invalidQuery", f"Invalid value for option format: {fmt}. Expected AVRO, CSV, JSON or PARQUET")
    files = file_settings(
        _SQL_FORMATS[fmt],
        options.get("compression"),
        _flag(options.get("header"), False),
        str(options.get("field_delimiter", ",")),
        _flag(options.get("use_avro_logical_types"), False),
    )
    return ExportSpec(parse_uri(uri), files, overwrite=_flag(options.get("overwrite"), False))


def _flag(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() == "true"
