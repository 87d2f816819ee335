"""The run manifest: what an export produced, written last, trusted by every later stage.

``_manifest.json`` lists every data file with size, md5 and crc32c (as GCS reports them),
the row count from a COUNT(*) of the source, the schema, the format, the BigQuery job and a
per-column fingerprint of what was exported (:mod:`shared.gcp.fingerprint`).
It is written with ``if_generation_match=0``: a run has exactly one manifest, and its
presence means the export is complete.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from shared.errors import RejectedInput
from shared.message_fields import SCHEMA_VERSION
from shared.messages import Source


@dataclass(frozen=True)
class ManifestFile:
    name: str  # file name inside the run folder
    object: str  # full GCS object name
    size: int
    md5: str | None = None  # base64, as GCS reports it
    crc32c: str | None = None  # base64, as GCS reports it
    generation: int | None = None
    sha1: str | None = None  # hex; filled when known (local writer computes it while writing)


@dataclass(frozen=True)
class Manifest:
    run_id: str
    source: Source
    date: str  # YYYY-MM-DD
    bucket: str
    prefix: str
    format: str
    compression: str | None
    file_name: str
    destinations: tuple[str, ...]
    job_id: str
    row_count: int
    schema: list[dict[str, Any]]
    files: tuple[ManifestFile, ...]
    created_at: str
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    fingerprint: dict[str, Any] | None = None
    """Per-column fingerprint of what was exported (shared.gcp.fingerprint); None when unknown."""

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def file(self, name: str) -> ManifestFile | None:
        return next((f for f in self.files if f.name == name), None)

    def to_json(self) -> bytes:
        data = dataclasses.asdict(self)
        data["source"] = self.source.model_dump()  # a pydantic model: every field, None included
        data["destinations"] = list(self.destinations)
        data["files"] = [dataclasses.asdict(f) for f in self.files]
        return json.dumps(data, indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes | str, where: str = "manifest") -> Manifest:
        """Parse; anything malformed or of another schema_version is RejectedInput naming the field."""
        try:
            obj = json.loads(data)
        except (ValueError, RecursionError) as exc:  # ValueError: bad JSON or UTF-8, a number over 4300 digits
            raise RejectedInput(f"{where}: not valid JSON ({exc.__class__.__name__}: {exc})") from None
        if not isinstance(obj, dict):
            raise RejectedInput(f"{where}: expected a JSON object")
        if obj.get("schema_version") != SCHEMA_VERSION:
            raise RejectedInput(
                f"{where}.schema_version: {obj.get('schema_version')!r} is not supported (expected {SCHEMA_VERSION})"
            )
        try:
            files = tuple(ManifestFile(**f) for f in obj["files"])
            return cls(
                run_id=obj["run_id"],
                source=Source.from_dict(obj["source"], f"{where}.source"),
                date=obj["date"],
                bucket=obj["bucket"],
                prefix=obj["prefix"],
                format=obj["format"],
                compression=obj.get("compression"),
                file_name=obj["file_name"],
                destinations=tuple(obj["destinations"]),
                job_id=obj["job_id"],
                row_count=int(obj["row_count"]),
                schema=list(obj["schema"]),
                files=files,
                created_at=obj["created_at"],
                extra=dict(obj.get("extra") or {}),
                fingerprint=obj.get("fingerprint"),
            )
        except KeyError as exc:
            raise RejectedInput(f"{where}.{exc.args[0]}: required field is missing") from None
        except (TypeError, ValueError) as exc:
            raise RejectedInput(f"{where}: malformed ({exc})") from None
