"""Which listed files a collect run takes, and why the others wait (pure logic, no I/O).

A file is identified by (partner, remote path, size, mtime): the same name with other bytes is
another file. It is taken when it matches the job's globs, is not collected yet (its identity
has a ``done`` record), is at least ``min_age_minutes`` old, and was listed with the same size
and mtime by the previous listing — so a file still being written is not taken, even when its
writer keeps the mtime old.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from shared.collect.source import ListedFile
from shared.config.collect import CollectJob

FileState = Literal["take", "collected", "excluded", "too_young", "settling"]
WHY: dict[FileState, str] = {
    "take": "new and stable: collected now",
    "collected": "already collected (same size and mtime)",
    "excluded": "not matched by include, or matched by exclude",
    "too_young": "modified less than min_age_minutes ago",
    "settling": "new or changed since the previous listing: taken once two listings agree",
}


@dataclass(frozen=True)
class FileIdentity:
    """One version of one partner file."""

    partner: str
    path: str
    size: int
    mtime: int

    @property
    def key(self) -> str:
        """Stable id of this version (state records are named by it)."""
        text = f"{self.partner}\n{self.path}\n{self.size}\n{self.mtime}"
        return hashlib.sha1(text.encode()).hexdigest()[:32]

    def labels(self) -> dict[str, str]:
        """The identity as labels on the copy (Drive appProperties): found again without state."""
        return {
            "offsite_partner": self.partner,
            "offsite_path": self.path,
            "offsite_size": str(self.size),
            "offsite_mtime": str(self.mtime),
        }


@dataclass(frozen=True)
class Judged:
    file: ListedFile
    identity: FileIdentity
    state: FileState


Snapshot = Mapping[str, tuple[int, int]]
"""The previous listing: file name → (size, mtime)."""


def identity_of(partner: str, job: CollectJob, name: str, size: int, mtime: int) -> FileIdentity:
    return FileIdentity(partner, f"{job.directory.rstrip('/')}/{name}", size, mtime)


def judge(
    job: CollectJob, files: Iterable[ListedFile], previous: Snapshot, done: set[str], now_s: float
) -> list[Judged]:
    """Every listed file with what this run does with it (see the module docstring)."""
    out: list[Judged] = []
    for f in files:
        identity = identity_of(job.partner, job, f.name, f.size, f.mtime)
        state: FileState
        if not job.wants(f.name):
            state = "excluded"
        elif identity.key in done:
            state = "collected"
        elif now_s - f.mtime < job.min_age_minutes * 60:
            state = "too_young"
        elif previous.get(f.name) != (f.size, f.mtime):
            state = "settling"
        else:
            state = "take"
        out.append(Judged(f, identity, state))
    return out


def snapshot(judged: Iterable[Judged]) -> dict[str, tuple[int, int]]:
    """What the next listing compares with: every wanted file not collected yet."""
    return {j.file.name: (j.file.size, j.file.mtime) for j in judged if j.state in ("take", "too_young", "settling")}
