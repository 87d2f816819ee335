"""``buckets[]``: GCS buckets mirrored object by object to destinations (seed 000's
``GCP/storage/{bucket}/`` tree in Box). docs/mirror.md describes the behaviour.

Each entry names a bucket, which objects (include/exclude globs on the object name), where they
go (the same destination ids as exports: ``box``, ``sftp:NAME``), when the reconcile runs, and
whether a delete in the bucket deletes the copy (``delete: mirror``) or keeps it (``keep``).
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import Annotated, Literal

from pydantic import Field, field_validator

from shared.config.retention import Retention
from shared.config.types import BUCKET_RE, Cron, Model, Names, Routes, TimeZone, matching
from shared.ids import DestinationId
from shared.validation import Problem, Problems

DeletePolicy = Literal["keep", "mirror"]
DEFAULT_REMOTE_FOLDER = "GCP/storage/{bucket}"
VERSIONS_FOLDER = "_offsite_versions"  # under the bucket's folder: copies kept by ``retention`` (docs/mirror.md)


class BucketMirror(Model):
    name: Annotated[str, matching(BUCKET_RE, "is not a valid bucket name (3-63 of a-z 0-9 . _ -)")] = Field(
        description="GCS bucket whose objects are mirrored."
    )
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
        description="Folder at the destination the object names go under; '{bucket}' is the bucket name.",
    )
    retention: Retention | None = Field(
        None,
        description="{daily: N, monthly: M} (needs delete: mirror): a copy deleted by the mirror is moved to "
        "'_offsite_versions/YYYY-MM-DD/' under the bucket's folder instead, and those dated folders are pruned "
        "to the newest N days and the newest of each of the last M months, once the bucket's latest reconcile "
        "there is in_sync. Absent: deleted copies are gone at once.",
    )

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


def bucket_problems(
    buckets: Sequence[BucketMirror], known: Sequence[DestinationId], own_buckets: Sequence[str], problems: Problems
) -> None:
    """Rules spanning the config: names unique, not offsite's own buckets (``own_buckets``),
    routes among the ``known`` destinations."""
    seen: set[str] = set()
    for i, entry in enumerate(buckets):
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
