"""``buckets[]``: GCS buckets mirrored object by object to destinations (seed 000's
``GCP/storage/{bucket}/`` tree in Box). docs/mirror.md describes the behaviour.

Each entry names a bucket, which objects (include/exclude globs on the object name), where they
go (the same destination ids as exports: ``box``, ``sftp:NAME``), when the reconcile runs, and
whether a delete in the bucket deletes the copy (``delete: mirror``) or keeps it (``keep``).
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import Literal

from pydantic import Field, field_validator

from shared.config.retention import Retention
from shared.config.types import Cron, Model, Names, Routes, TimeZone, bucket_problem
from shared.ids import DestinationId
from shared.validation import Problem, Problems

DeletePolicy = Literal["keep", "mirror"]
DEFAULT_REMOTE_FOLDER = "GCP/storage/{bucket}"
VERSIONS_FOLDER = "_offsite_versions"  # under the bucket's folder: copies kept by ``retention`` (docs/mirror.md)


class BucketMirror(Model):
    name: str = Field(description="GCS bucket whose objects are mirrored.")
    include: Names = Field(
        (), description="Glob patterns on object names ('*' also matches '/'); empty means every object."
    )
    exclude: Names = Field((), description="Glob patterns of object names never mirrored, even when included.")
    destinations: Routes = Field(
        (), description="Where objects go: 'box', 'sftp:PARTNER'; empty = every configured destination."
    )
    schedule: Cron | None = Field(
        None, description="Cron of the reconcile (list both sides, fix the difference, verify); none: on demand."
    )
    time_zone: TimeZone = Field("UTC", description="Time zone of the schedule.")
    delete: DeletePolicy = Field(
        "keep", description="'keep': copies stay when objects are deleted; 'mirror': deletes are applied too."
    )
    location: str | None = Field(
        None,
        description="The bucket's location when it is not the functions' region (e.g. 'us', 'eu'): Eventarc "
        "triggers on a bucket must be in its location (infra/mirror.tf).",
    )
    remote_folder: str = Field(
        DEFAULT_REMOTE_FOLDER,
        description="Folder at the destination the object names go under; '{bucket}' is the bucket name. Its "
        "own: not the root, nor another bucket's, the exports' or a collect job's folder.",
    )
    retention: Retention | None = Field(
        None,
        description="{daily: N, monthly: M} (needs delete: mirror): a copy deleted by the mirror is moved to "
        "'_offsite_versions/YYYY-MM-DD/' under the bucket's folder instead, and those dated folders are pruned "
        "to the newest N days and the newest of each of the last M months, once the bucket's latest reconcile "
        "there is in_sync. Absent: deleted copies are gone at once.",
    )

    @field_validator("name")
    @classmethod
    def _bucket_name(cls, value: str) -> str:
        problem = bucket_problem(value)
        if problem is not None:
            raise Problem(problem)
        return value

    @field_validator("include", "exclude")
    @classmethod
    def _globs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        problems = Problems()
        for i, pattern in enumerate(value):
            if not pattern.strip():
                problems.add((i,), f"{pattern!r} is an empty pattern; expected a glob such as 'models/*.pt'")
        problems.raise_any()
        return value

    @field_validator("remote_folder")
    @classmethod
    def _folder(cls, value: str) -> str:
        parts = [p for p in value.split("/") if p]
        if any(p in (".", "..") for p in parts) or value.startswith("/"):
            raise Problem(
                f"{value!r} must be a relative folder without '.' or '..' (default {DEFAULT_REMOTE_FOLDER!r})"
            )
        return value

    def selects(self, object_name: str) -> bool:
        """Is ``object_name`` mirrored? Included (or no include list), not excluded, not a
        folder placeholder (a name ending in '/') and not under the reserved ``_offsite_versions/``."""
        if not object_name or object_name.endswith("/") or object_name.split("/", 1)[0] == VERSIONS_FOLDER:
            return False
        if self.include and not any(fnmatchcase(object_name, p) for p in self.include):
            return False
        return not any(fnmatchcase(object_name, p) for p in self.exclude)

    @property
    def folder(self) -> str:
        """The destination folder of this bucket's objects (``GCP/storage/NAME``)."""
        return "/".join(p for p in self.remote_folder.replace("{bucket}", self.name).split("/") if p)

    @property
    def versions_folder(self) -> str:
        """Where ``retention`` keeps removed copies: ``{folder}/_offsite_versions``."""
        return f"{self.folder}/{VERSIONS_FOLDER}" if self.folder else VERSIONS_FOLDER


EXPORT_TREES = ("GCP/bigquery", "GCP/exports")  # where exports go at Box and Drive (shared/layout.py)


def _overlaps(a: str, b: str) -> bool:
    """Is one folder the other, or inside it ('' is the root: everything is)? Regardless of case:
    Box and Drive fold it, so ``gcp/bigquery`` there is the exports' ``GCP/bigquery``."""
    a, b = a.casefold(), b.casefold()
    return not a or not b or a == b or a.startswith(b + "/") or b.startswith(a + "/")


def reserved_folders(datasets: Sequence[str], exports: Sequence[str], collect: dict[str, str]) -> dict[str, str]:
    """{folder: whose it is} of what other features write at the destinations: a mirror's
    folder must stay clear of them, since ``delete: mirror`` deletes every file in it that no
    object holds."""
    reserved = {tree: "the exports' tree at Box and Drive" for tree in EXPORT_TREES}
    reserved |= {name: f"the folder of dataset {name!r} at SFTP partners" for name in datasets}
    reserved |= {name: f"the folder of query export {name!r} at SFTP partners" for name in exports}
    reserved |= {
        folder: f"the folder of collect job {job!r}"
        if folder
        else f"the root, where collect job {job!r} puts subfolders"
        for job, folder in collect.items()
    }
    return reserved


def bucket_problems(
    buckets: Sequence[BucketMirror],
    known: Sequence[DestinationId],
    own_buckets: Sequence[str],
    reserved: dict[str, str],
    problems: Problems,
) -> None:
    """Rules spanning the config: names unique, not offsite's own buckets (``own_buckets``),
    routes among the ``known`` destinations, each folder its own (:func:`folder_problem`)."""
    seen: set[str] = set()
    for i, entry in enumerate(buckets):
        problem = folder_problem(entry, buckets[:i], reserved)
        if problem:
            problems.add(("buckets", i, "remote_folder"), problem)
        if entry.name in seen:
            problems.add(("buckets", i, "name"), f"{entry.name!r} is listed twice")
        seen.add(entry.name)
        if entry.retention is not None and entry.delete != "mirror":
            problems.add(
                ("buckets", i, "retention"),
                f"{entry.retention.describe()} needs 'delete: mirror' (with delete: {entry.delete!r} no copy is "
                "ever removed, so there is nothing to keep versions of); set delete: mirror or remove retention",
            )
        if entry.name in own_buckets:
            problems.add(
                ("buckets", i, "name"),
                f"{entry.name!r} is offsite's own exports or state bucket; expected a bucket of your data",
            )
        for j, name in enumerate(entry.destinations):
            if name not in known:
                problems.add(
                    ("buckets", i, "destinations", j),
                    f"{str(name)!r} is not a configured destination (configured: {', '.join(known) or 'none'})",
                )


def folder_problem(entry: BucketMirror, earlier: Sequence[BucketMirror], reserved: dict[str, str]) -> str | None:
    """Why ``entry``'s folder cannot be its own, if it cannot: a reconcile treats every file in
    it as the bucket's (``delete: mirror`` deletes what no object holds), so it must not be the
    destination's root, another bucket's folder, or what exports and collect write (in any case)."""
    folder = entry.folder
    said = f"{entry.remote_folder!r} ({folder!r} for bucket {entry.name!r})"
    if not folder:
        return f"{said} is the destination's root; expected a folder of the bucket's own (default {DEFAULT_REMOTE_FOLDER!r})"
    for other in earlier:
        if _overlaps(folder, other.folder):
            return (
                f"{said} overlaps {other.folder!r}, the folder of bucket {other.name!r}; expected a folder of its own"
            )
    for taken, whose in reserved.items():
        if _overlaps(folder, taken):
            return f"{said} overlaps {taken!r}, {whose}; expected a folder of the bucket's own"
    return None
