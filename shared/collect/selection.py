"""Which listed files a collect run takes, and why the others wait (pure logic, no I/O).

A file is identified by (partner, remote path, size, mtime): the same name with other bytes is
another file. It is taken when it matches the job's globs, is not collected yet (its identity
has a ``done`` record), is at least ``min_age_minutes`` old, and was listed with the same size
and mtime by the previous listing — so a file still being written is not taken, even when its
writer keeps the mtime old.

A file whose name collect cannot copy (not UTF-8, a backslash: :func:`file_name_problem`) is
``unsupported``, and files whose paths differ only in case are held (``case_clash``) when a
destination names files case-insensitively (:func:`hold_case_clashes`): both are reported with
the run, never copied, and the other files are collected as usual.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Literal

from shared.collect.messages import file_name_problem, printable
from shared.collect.source import ListedFile
from shared.config.collect import CollectJob

FileState = Literal["take", "collected", "excluded", "too_young", "settling", "unsupported", "case_clash"]
WHY: dict[FileState, str] = {
    "take": "new and stable: collected now",
    "collected": "already collected (same size and mtime)",
    "excluded": "not matched by include, or matched by exclude",
    "too_young": "modified less than min_age_minutes ago",
    "settling": "new or changed since the previous listing: taken once two listings agree",
    "unsupported": "a name collect cannot copy: not collected until renamed at the partner",
    "case_clash": "another file's name differs only in case at a destination that ignores case: held",
}
HELD: frozenset[FileState] = frozenset({"unsupported", "case_clash"})
"""States of files a run does not collect and reports (until the partner renames them)."""


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
        return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:32]  # a name's own bytes

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
    note: str = ""  # why, for this file, when WHY[state] is not the whole story

    @property
    def why(self) -> str:
        return f"{WHY[self.state]} ({self.note})" if self.note else WHY[self.state]


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
        note = ""
        if not job.wants(f.name):
            state = "excluded"
        elif (problem := file_name_problem(f.name)) is not None:
            state, note = "unsupported", problem
        elif identity.key in done:
            state = "collected"
        elif job.min_age_minutes and now_s - f.mtime < job.min_age_minutes * 60:
            # (without a minimum age, a file dated ahead of our clock — a partner's clock ahead,
            # or local time written as UTC — is not held: two listings still judge it stable)
            state = "too_young"
        elif previous.get(f.name) != (f.size, f.mtime):
            state = "settling"
        else:
            state = "take"
        out.append(Judged(f, identity, state, note))
    return out


def case_clashes(judged: Iterable[Judged]) -> dict[str, list[str]]:
    """Paths of files to copy or collected (not excluded, not unsupported), by their case-folded
    form, where two or more share one (``Report.csv``, ``report.csv``)."""
    groups: dict[str, list[str]] = {}
    for j in judged:
        if j.state not in ("excluded", "unsupported"):
            groups.setdefault(j.file.name.casefold(), []).append(j.file.name)
    return {folded: names for folded, names in groups.items() if len(names) > 1}


def hold_case_clashes(judged: list[Judged], folding: list[str]) -> list[Judged]:
    """``judged`` with each file of a :func:`case_clashes` group held (``case_clash``) when
    destinations in ``folding`` name files case-insensitively (Box): copied there, one would
    replace the other and both be reported collected. Files already collected stay so (a kept
    ``Report.csv`` collected yesterday holds today's ``report.csv``)."""
    clashes = case_clashes(judged) if folding else {}
    out = []
    for j in judged:
        same = clashes.get(j.file.name.casefold(), [])
        if same and j.state != "collected":
            others = ", ".join(printable(n) for n in same if n != j.file.name)
            note = f"same name but for case as {others}; {', '.join(folding)} would keep one"
            j = replace(j, state="case_clash", note=note)
        out.append(j)
    return out


def snapshot(judged: Iterable[Judged]) -> dict[str, tuple[int, int]]:
    """What the next listing compares with: every wanted file not collected yet (one held for a
    case clash too: once its twin is gone it is taken without another settling)."""
    kept = ("take", "too_young", "settling", "case_clash")
    return {j.file.name: (j.file.size, j.file.mtime) for j in judged if j.state in kept}
