"""Find a run's manifest copy at a destination, through the Destination protocol only (nothing
from GCS: the copy must be restorable when Google Cloud is what was lost)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from shared.config.types import TABLE_RE
from shared.destinations.base import Destination, Readable, normalize_path
from shared.errors import PermanentError, RejectedInput
from shared.layout import MANIFEST_NAME, RunFolder, is_manifest_copy, remote_folder, yyyymmdd
from shared.manifest import Manifest
from shared.message_fields import DATASET_RE
from shared.messages import Source

READ_LIMIT = 64 * 1024 * 1024  # a manifest is small; refuse to buffer more than this


@dataclass(frozen=True)
class RemoteRun:
    """One run folder at a destination: where its files are, and its manifest."""

    folder: str  # relative to the destination root ("" for a flat partner)
    manifest_path: str
    manifest: Manifest

    def path_of(self, name: str) -> str:
        return f"{self.folder}/{name}" if self.folder else name


def _search_root(destination: Destination) -> str:
    return "GCP" if destination.abilities.layout == "gcp_tree" else ""


def manifest_paths(destination: Destination, run_id: str) -> list[str]:
    """Every manifest copy of ``run_id`` at ``destination``: ``…/{run_id}/_manifest.json`` (a run's
    own folder), ``_manifest_{run_id}.json`` (a folder shared with other runs) or
    ``_manifest_{run_id}_{dataset}.{table}.json`` (a flat root: one per table; :func:`remote_manifest_name`).
    A longer run id sharing the prefix is told apart by the manifest's own run id (:func:`find_run`)."""
    found = []
    for remote in destination.list(_search_root(destination)):
        path = normalize_path(remote.path)
        folder, _, name = path.rpartition("/")
        own_folder = name == MANIFEST_NAME and folder.rpartition("/")[2] == run_id
        shared = name == f"_manifest_{run_id}.json" or (
            name.startswith(f"_manifest_{run_id}_") and is_manifest_copy(name)
        )
        if own_folder or shared:
            found.append(path)
    return sorted(found)


def read_manifest(destination: Destination, path: str) -> Manifest:
    if not isinstance(destination, Readable):
        raise RejectedInput(f"{destination.name} cannot be read back; nothing can be restored from it")
    stream = destination.open(path)
    try:
        data = stream.read(READ_LIMIT + 1)
    finally:
        stream.close()
    if len(data) > READ_LIMIT:
        raise PermanentError(f"{destination.location(path)}: larger than {READ_LIMIT} bytes; not a manifest")
    try:
        return Manifest.from_json(data, destination.location(path))
    except RejectedInput as exc:  # the copy is damaged, not the request: a failure, not bad input
        raise PermanentError(f"{destination.location(path)}: not a readable manifest: {exc}") from None


def find_run(destination: Destination, run_id: str, table: str | None = None) -> RemoteRun:
    """The run folder of ``run_id`` (and ``table``: ``dataset.table`` or an export name) at
    ``destination``. RejectedInput naming what was found when it is none or more than one."""
    runs = []
    for path in manifest_paths(destination, run_id):
        manifest = read_manifest(destination, path)
        if manifest.run_id != run_id:
            continue
        if table is None or table in (manifest.source.label, manifest.source.export):
            runs.append(RemoteRun(path.rpartition("/")[0], path, manifest))
    runs = _named_copies_first(runs, run_id)
    if not runs:
        raise RejectedInput(
            f"restore: no manifest of run {run_id!r}{f' for {table!r}' if table else ''} at {destination.name}"
        )
    if len(runs) > 1:
        names = ", ".join(sorted(r.manifest.source.label for r in runs))
        raise RejectedInput(
            f"restore: run {run_id!r} holds several tables at {destination.name} ({names}); pass --table"
        )
    return runs[0]


def _named_copies_first(runs: list[RemoteRun], run_id: str) -> list[RemoteRun]:
    """One copy per table: a flat root delivered to before copies were named by table may still
    hold the run-wide ``_manifest_{run_id}.json`` next to the table's own copy; the own one wins."""
    legacy = f"_manifest_{run_id}.json"
    named = {r.manifest.source.label for r in runs if r.manifest_path.rpartition("/")[2] != legacy}
    return [r for r in runs if r.manifest_path.rpartition("/")[2] != legacy or r.manifest.source.label not in named]


def find_as_of(destination: Destination, table: str, day: dt.date) -> RemoteRun:
    """Point in time: the newest run of ``table`` (``dataset.table``) dated on or before ``day``
    whose copy at ``destination`` is complete — its manifest is there (delivered only after every
    data file) and every listed file has the manifest's size. Judged at the destination alone, so
    it works with Google Cloud gone; the restore then checks every SHA-1."""
    dataset, _, name = table.partition(".")
    if not (DATASET_RE.match(dataset) and TABLE_RE.match(name)):
        raise RejectedInput(f"restore --table: {table!r} is not DATASET.TABLE (needed with --date)")
    if destination.abilities.layout == "flat":
        raise RejectedInput(f"restore --date: {destination.name} keeps files flat; name the run id instead")
    source = Source(mode="table", project="", dataset=dataset, table=name)
    base = remote_folder(destination.abilities.layout, RunFolder("", source, day, "r0"), "*").path.rsplit("/", 2)[0]
    sizes = {normalize_path(f.path): f.size for f in destination.list(base)}
    candidates = []
    for path in sizes:
        parts = path[len(base) + 1 :].split("/")
        if len(parts) == 3 and parts[2] == MANIFEST_NAME and parts[0].isdigit() and parts[0] <= yyyymmdd(day):
            candidates.append((parts[0], path))
    for when in sorted({d for d, _ in candidates}, reverse=True):
        complete = []
        for path in (p for d, p in candidates if d == when):
            manifest, folder = read_manifest(destination, path), path.rpartition("/")[0]
            if all(sizes.get(f"{folder}/{f.name}") == f.size for f in manifest.files):
                complete.append(RemoteRun(folder, path, manifest))
        if complete:  # reruns of one day: the one exported last
            return max(complete, key=lambda run: run.manifest.created_at)
    raise RejectedInput(f"restore: no complete copy of {table} dated on or before {day} at {destination.name}")
