"""Finding runs in GCS for verify: run folders, their manifests, their objects and SHA-1s.

A run folder (``shared.layout.RunFolder``) holds ``_run.json`` (written when the export
starts), the data files, ``_manifest.json`` (written last) and verify's markers. Lookups here
list the bucket under ``export_prefix``, or, by run id, only the folders the fan-out recorded
for it (:mod:`shared.run_index`: GCS has no listing by run id); the bucket's lifecycle rule
(``expiration_days``) keeps the whole listings bounded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from shared import run_index
from shared.errors import PermanentError, RejectedInput
from shared.gcp import gcs, reader
from shared.layout import MANIFEST_NAME, QUERY_SEGMENT, RUN_NAME, RunFolder, parse_object_name, yyyymmdd
from shared.manifest import Manifest, ManifestFile

T = TypeVar("T")
LIST_WORKERS = 8  # a run's folders listed at once (:func:`find_runs` by run id)
SHA1_METADATA_KEY = "sha1"  # set on each data object by the upload functions after delivery


@dataclass(frozen=True)
class GcsObject:
    """A listed object with what verify needs from it."""

    name: str
    size: int
    generation: int
    created: dt.datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_info(cls, info: gcs.ObjectInfo) -> GcsObject:
        return cls(info.name, info.size, info.generation, info.time_created, info.metadata)


@dataclass(frozen=True)
class RunRef:
    """One run folder found in the bucket."""

    bucket: str
    folder: RunFolder
    started: dt.datetime | None  # creation time of _run.json (or of the manifest when _run.json is gone)
    has_run: bool
    has_manifest: bool


def list_objects(bucket: str, prefix: str) -> list[GcsObject]:
    """Every live object under ``prefix`` (with creation times and metadata), sorted by name."""
    return sorted(scan_objects(bucket, prefix, list), key=lambda o: o.name)


def scan_objects(bucket: str, prefix: str, summarize: Callable[[Iterator[GcsObject]], T]) -> T:
    """``summarize`` over every live object under ``prefix``, streamed (:func:`shared.gcp.gcs.fold_prefix`)."""
    return gcs.fold_prefix(bucket, prefix, lambda infos: summarize(map(GcsObject.from_info, infos)))


def find_runs(
    bucket: str,
    export_prefix: str,
    project: str = "",
    *,
    run_id: str | None = None,
    dataset: str | None = None,
    table: str | None = None,
    export: str | None = None,
    date: dt.date | None = None,
    state_bucket: str | None = None,
) -> list[RunRef]:
    """Run folders by run id (every table of it), by dataset+table+date or by export+date. By run
    id with ``state_bucket``: only the folders the fan-out recorded for it (:mod:`shared.run_index`)
    are listed; the whole bucket only for a run it has no record of."""
    head = export_prefix.strip("/") + "/"
    if run_id and state_bucket and not (dataset or export or date):
        indexed = run_index.exports_of(state_bucket, run_id)
        if indexed is not None:
            return runs_in(_list_folders([e.prefix for e in indexed], bucket), bucket, export_prefix, project)
    if dataset and table and date:
        prefix = f"{head}{dataset}/{table}/{yyyymmdd(date)}/"
    elif export and date:
        prefix = f"{head}{QUERY_SEGMENT}/{export}/{yyyymmdd(date)}/"
    else:
        prefix = head
    runs = runs_in(list_objects(bucket, prefix), bucket, export_prefix, project)
    return [r for r in runs if run_id is None or r.folder.run_id == run_id]


def _list_folders(prefixes: list[str], bucket: str) -> list[GcsObject]:
    """Every object of the run folders ``prefixes`` (one small listing each, a few at once)."""
    with ThreadPoolExecutor(max_workers=LIST_WORKERS) as pool:
        return [obj for listed in pool.map(lambda p: list_objects(bucket, p), prefixes) for obj in listed]


def runs_in(objects: Iterable[GcsObject], bucket: str, export_prefix: str, project: str = "") -> list[RunRef]:
    """Group listed objects into run folders (those with a ``_run.json`` or a manifest)."""
    index = RunIndex(bucket, export_prefix, project)
    for obj in objects:
        index.add(obj)
    return index.refs()


class RunIndex:
    """Run folders gathered from objects seen one at a time: it keeps two objects a folder (its
    ``_run.json`` and manifest), whatever else the folder holds."""

    def __init__(self, bucket: str, export_prefix: str, project: str = "") -> None:
        self.bucket, self.export_prefix, self.project = bucket, export_prefix, project
        self._found: dict[str, dict[str, Any]] = {}

    def add(self, obj: GcsObject) -> None:
        parsed = parse_object_name(obj.name, self.export_prefix, self.project)
        if parsed is None or parsed[1] not in (RUN_NAME, MANIFEST_NAME):
            return
        folder, name = parsed
        entry = self._found.setdefault(folder.prefix, {"folder": folder, "run": None, "manifest": None})
        entry["run" if name == RUN_NAME else "manifest"] = obj

    def refs(self) -> list[RunRef]:
        """The run folders, oldest start first."""
        refs = []
        for entry in self._found.values():
            first = entry["run"] or entry["manifest"]
            refs.append(
                RunRef(
                    self.bucket, entry["folder"], first.created, entry["run"] is not None, entry["manifest"] is not None
                )
            )
        return sorted(refs, key=lambda r: (r.started or dt.datetime.min.replace(tzinfo=dt.UTC), r.folder.prefix))


def load_manifest(bucket: str, folder: RunFolder) -> Manifest | None:
    """The run's manifest; None when not written yet; RejectedInput when malformed."""
    data = gcs.read_bytes(bucket, folder.manifest_name)
    if data is None:
        return None
    manifest = Manifest.from_json(data, where=gcs.uri(bucket, folder.manifest_name))
    if manifest.run_id != folder.run_id or manifest.prefix.strip("/") != folder.prefix.strip("/"):
        raise RejectedInput(
            f"{gcs.uri(bucket, folder.manifest_name)}: run_id/prefix {manifest.run_id!r}/{manifest.prefix!r} "
            f"do not match the folder it is in ({folder.prefix!r})"
        )
    return manifest


class RunObjects:
    """The objects of one run folder, listed once: SHA-1 metadata, generations, start time."""

    def __init__(self, bucket: str, folder: RunFolder) -> None:
        self.bucket = bucket
        self.folder = folder
        self.objects = {o.name: o for o in list_objects(bucket, folder.prefix)}

    @property
    def started(self) -> dt.datetime | None:
        obj = self.objects.get(self.folder.run_name) or self.objects.get(self.folder.manifest_name)
        return obj.created if obj else None

    def object(self, file: ManifestFile) -> GcsObject | None:
        return self.objects.get(file.object)

    def sha1(self, file: ManifestFile) -> str:
        """Hex SHA-1 of an exported file: from the manifest, the object's metadata, or its bytes."""
        if file.sha1:
            return file.sha1
        obj = self.objects.get(file.object)
        if obj is not None and obj.metadata.get(SHA1_METADATA_KEY):
            return obj.metadata[SHA1_METADATA_KEY]
        if obj is None:
            raise PermanentError(f"{gcs.uri(self.bucket, file.object)}: exported file is gone from GCS; cannot hash it")
        return reader.sha1_of_live(self.bucket, file.object)
