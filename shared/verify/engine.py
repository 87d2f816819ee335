"""The verify engine: does a destination hold exactly what a run's manifest says? (``rclone check``)

It compares a :class:`~shared.manifest.Manifest` with the listing of the run's folder at one
:class:`~shared.destinations.base.Destination` and reports, by file name:

- ``missing``: in the manifest, not at the destination;
- ``extra``: at the destination (in this run's folder, or matching this run's name pattern in
  a shared folder), not in the manifest — ``.partial`` leftovers of interrupted uploads count
  here and are also named in ``partial``;
- ``size_differs``: present with another size;
- ``hash_differs``: same size, another SHA-1;
- ``duplicates``: held more than once (Drive keeps files of one name side by side; on a
  destination that folds case, names differing only in case are one): neither copy is taken
  for the file, so the comparison is not in sync, and a re-delivery cannot repair it.

``check`` says how strong the comparison was: ``sha1`` when both sides were hashed (the
destination's listing when it reports SHA-1, else by reading the file back through
:class:`~shared.destinations.base.Readable`, like ``rclone check --download``), or
``size-only`` with ``check_note`` saying why — never silently weaker.

The engine works on the Destination protocol only: it imports no backend (box, sftp) and no
GCS client. The manifest side's SHA-1 comes from a ``source_sha1`` callable the caller gives
(the verify stage reads it from the manifest, the object's ``sha1`` metadata or the object).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict, TypeVar

from shared.destinations.base import Destination, Readable, RemoteFile, normalize_path, sha1_of_stream
from shared.errors import PermanentError
from shared.layout import RemoteFolder
from shared.manifest import Manifest, ManifestFile

T = TypeVar("T")

Check = Literal["sha1", "size-only"]
SHA1: Check = "sha1"
SIZE_ONLY: Check = "size-only"

SourceSha1 = Callable[[ManifestFile], str]


@dataclass
class ReadBack:
    """What a verification has read back: SHA-1s by remote path, with the size and mtime (None:
    not reported) each file had then, and (``verify.rows``) the records counted in each file, with
    the size and SHA-1 it was verified to have. A comparison that runs out of time keeps them,
    and the next invocation of the same verification reads only the rest
    (:mod:`shared.verify.readback`)."""

    files: dict[str, tuple[int, int | None, str]] = field(default_factory=dict)
    records: dict[str, tuple[int, str | None, int]] = field(default_factory=dict)
    read: int = 0  # files read back or counted since it was made or loaded (a changed file read again counts)

    def sha1_of(self, file: RemoteFile) -> str | None:
        """The SHA-1 read back earlier, while the file's size and mtime are the same."""
        known = self.files.get(file.path)
        return known[2] if known is not None and known[:2] == (file.size, file.mtime) else None

    def add(self, file: RemoteFile, sha1: str) -> None:
        self.files[file.path] = (file.size, file.mtime, sha1)
        self.read += 1

    def records_of(self, path: str, size: int, sha1: str | None) -> int | None:
        """The records counted earlier in the file at ``path``, while it is the same file (size, SHA-1)."""
        known = self.records.get(path)
        return known[2] if known is not None and known[:2] == (size, sha1) else None

    def add_records(self, path: str, size: int, sha1: str | None, records: int) -> None:
        self.records[path] = (size, sha1, records)
        self.read += 1

    @property
    def kept(self) -> int:
        return len(self.files) + len(self.records)

    def to_json(self) -> dict[str, Any]:
        return {
            "files": {p: {"size": z, "mtime": m, "sha1": h} for p, (z, m, h) in sorted(self.files.items())},
            "records": {p: {"size": z, "sha1": h, "records": n} for p, (z, h, n) in sorted(self.records.items())},
        }

    @classmethod
    def from_json(cls, body: Any) -> ReadBack:
        """The form ``to_json`` wrote; ValueError, TypeError, KeyError or AttributeError when it is not that."""

        def optional(value: Any, kind: Callable[[Any], T]) -> T | None:
            return None if value is None else kind(value)

        files = {
            str(p): (int(f["size"]), optional(f.get("mtime"), int), str(f["sha1"])) for p, f in body["files"].items()
        }
        records = {
            str(p): (int(f["size"]), optional(f.get("sha1"), str), int(f["records"]))
            for p, f in body.get("records", {}).items()
        }
        return cls(files, records)


@dataclass(frozen=True)
class Comparison:
    """One manifest against one destination folder. Lists hold file names relative to the folder."""

    destination: str
    folder: str
    check: Check
    check_note: str | None = None
    missing: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    partial: tuple[str, ...] = ()
    in_flight: tuple[str, ...] = ()
    """Partial files of manifest files: a delivery of that file is (or was, if it died) writing."""
    size_differs: tuple[str, ...] = ()
    hash_differs: tuple[str, ...] = ()
    files_expected: int = 0
    files_present: int = 0
    bytes_expected: int = 0
    bytes_present: int = 0
    details: dict[str, str] = field(default_factory=dict)
    removed: tuple[str, ...] = ()
    """Files of a superseded run of the same day deleted from a shared folder (shared.verify.superseded)."""
    would_remove: tuple[str, ...] = ()
    """What verify would delete there, when asked not to (``offsite verify``): left in ``extra``."""
    duplicates: tuple[str, ...] = ()
    """Names held more than once at the destination; ``details`` gives the copies' sizes."""

    def counts(self) -> dict[str, Any]:
        """What a VerifyResult reports of this comparison: the differences and the counts."""
        return {
            "missing": list(self.missing),
            "extra": list(self.extra),
            "size_differs": list(self.size_differs),
            "hash_differs": list(self.hash_differs),
            "files_expected": self.files_expected,
            "files_present": self.files_present,
            "bytes_expected": self.bytes_expected,
            "bytes_present": self.bytes_present,
        }

    rows_note: str | None = None
    """``verify.rows``: why the delivered files' records do not add up to the manifest's row count."""

    @property
    def complete(self) -> bool:
        """Every manifest file is at the destination (by name)."""
        return not self.missing

    @property
    def in_sync(self) -> bool:
        return self.complete and not (
            self.extra or self.size_differs or self.hash_differs or self.duplicates or self.rows_note
        )

    @property
    def repairable(self) -> tuple[str, ...]:
        """Files a re-delivery can fix: missing, or present with other bytes."""
        return tuple(sorted(set(self.missing) | set(self.size_differs) | set(self.hash_differs)))

    def summary(self) -> str:
        """One line: what is wrong, e.g. ``1 missing (a.parquet); 1 hash differs (b.parquet)``."""
        parts = []
        for label, names in (
            ("missing", self.missing),
            ("extra", self.extra),
            ("size differs", self.size_differs),
            ("hash differs", self.hash_differs),
        ):
            if names:
                shown = ", ".join(names[:5]) + (f", … {len(names) - 5} more" if len(names) > 5 else "")
                parts.append(f"{len(names)} {label} ({shown})")
        if self.duplicates:
            held = "; ".join(f"{n}: {self.details.get(n, '')}" for n in self.duplicates)
            parts.append(f"{len(self.duplicates)} held more than once ({held})")
        if self.partial:
            parts.append(f"{len(self.partial)} unfinished upload(s) left as .partial")
        if self.rows_note:
            parts.append(self.rows_note)
        return "; ".join(parts) if parts else "in sync"


def choose_check(destination: Destination, *, download_hashes: bool, source_hashes: bool) -> tuple[Check, str | None]:
    """Which check ``compare`` can do on ``destination``, and why when it is only ``size-only``."""
    if not source_hashes:
        return SIZE_ONLY, "no SHA-1 is available for the exported files"
    if "sha1" in destination.abilities.hashes:
        return SHA1, None
    if not isinstance(destination, Readable):
        return SIZE_ONLY, f"{destination.name} reports no SHA-1 and cannot be read back"
    if not download_hashes:
        return SIZE_ONLY, f"{destination.name} reports no SHA-1 and download hashing is switched off"
    return SHA1, None


def compare(
    manifest: Manifest,
    destination: Destination,
    folder: RemoteFolder,
    *,
    source_sha1: SourceSha1 | None,
    download_hashes: bool = True,
    partial_suffixes: Sequence[str] | None = None,
    also_expected: Sequence[ManifestFile] | Callable[[], Sequence[ManifestFile]] = (),
    deadline: float | None = None,
    read_back: ReadBack | None = None,
) -> Comparison:
    """Compare ``manifest`` with ``destination``'s listing of ``folder``.

    ``also_expected``: files the destination must hold besides the data files (the run's
    manifest copy), compared the same way; they belong to the run even in a shared folder. A
    callable is asked after the destination was listed (what it names may appear meanwhile).

    ``source_sha1(file)`` gives the hex SHA-1 of an exported file (None: no hashes, size-only).
    ``partial_suffixes``: names of unfinished uploads; default: the destination's declared one.
    Raises what the destination raises (``TransientError`` for network trouble, ``PermanentError``
    for auth/config), so the stage retries or reports ``failed``; :class:`NoTimeLeft` when the
    listing or the hashing is still going at ``deadline`` (``time.monotonic()``; None: no limit).
    ``read_back``: SHA-1s read back earlier by this verification (used for a file of the same
    size); each file read back now is added to it.
    """
    partial_suffixes = _partial_suffixes(destination) if partial_suffixes is None else partial_suffixes
    check, note = choose_check(destination, download_hashes=download_hashes, source_hashes=source_sha1 is not None)
    listed = list(before(deadline, destination.list(folder.path), f"listing {folder.path} at {destination.name}"))
    also_expected = also_expected() if callable(also_expected) else also_expected
    expected = {f.name: f for f in (*manifest.files, *also_expected)}
    owned = list(_owned(listed, folder, partial_suffixes, {f.name for f in also_expected}))
    remote = dict(owned)  # a name held twice is in `duplicates`, not compared: no copy stands for both
    duplicates = held_more_than_once(owned, folds_case=destination.abilities.folds_case)
    missing = _missing(expected, remote, manifest, also_expected)
    extra = sorted(n for n in remote if n not in expected)
    partial = [n for n in extra if n.endswith(tuple(partial_suffixes))]
    in_flight = [n for n in partial if partial_stem(n, partial_suffixes) in expected]
    pairs = [(expected[n], remote[n]) for n in sorted(expected) if n in remote and n not in duplicates]
    hashing = before(deadline, pairs, f"comparing the files of {folder.path} at {destination.name}")
    size_differs, hash_differs, details = _differences(
        hashing, destination, source_sha1 if check == SHA1 else None, deadline, read_back or ReadBack()
    )
    details.update(duplicates)
    return Comparison(
        destination=destination.name,
        folder=folder.path,
        check=check,
        check_note=note,
        missing=tuple(missing),
        extra=tuple(extra),
        partial=tuple(partial),
        in_flight=tuple(in_flight),
        size_differs=tuple(size_differs),
        hash_differs=tuple(hash_differs),
        duplicates=tuple(sorted(duplicates)),
        details=details,
        **_counts(manifest, remote),
    )


def _partial_suffixes(destination: Destination) -> tuple[str, ...]:
    suffix = destination.abilities.partial_suffix
    return (suffix,) if suffix else ()


def _missing(
    expected: Mapping[str, ManifestFile],
    remote: Mapping[str, RemoteFile],
    manifest: Manifest,
    also_expected: Sequence[ManifestFile],
) -> list[str]:
    """Expected names the destination does not hold; the manifest copy is only missing once
    every data file is there (it is written after them)."""
    missing = sorted(n for n in expected if n not in remote)
    if any(f.name in missing for f in manifest.files):
        missing = [n for n in missing if n not in {f.name for f in also_expected}]
    return missing


class _Counts(TypedDict):
    files_expected: int
    files_present: int
    bytes_expected: int
    bytes_present: int


def _counts(manifest: Manifest, remote: Mapping[str, RemoteFile]) -> _Counts:
    """Counts of data files: the manifest copy is checked, and named when wrong, not counted."""
    held = [f for f in manifest.files if f.name in remote]
    return {
        "files_expected": len(manifest.files),
        "files_present": len(held),
        "bytes_expected": manifest.total_bytes,
        "bytes_present": sum(remote[f.name].size for f in held),
    }


class NoTimeLeft(PermanentError):
    """A comparison still going at its deadline: too long for one invocation, which must leave
    time to act on it and report (a retry would run out the same way)."""


def stop_at(deadline: float | None, what: str, size: int) -> Callable[[int], None]:
    """A ``before_block(bytes read so far)`` check for reading one file of ``size`` bytes:
    NoTimeLeft once ``deadline`` has passed, saying how far ``what`` got."""

    def in_time(done: int) -> None:
        if deadline is not None and time.monotonic() > deadline:
            raise NoTimeLeft(f"{what}: not done when the time for it ran out ({done:,} of {size:,} bytes read)")

    return in_time


def before(deadline: float | None, items: Iterable[T], what: str) -> Iterator[T]:
    """``items``, checking the clock at each; NoTimeLeft once ``deadline`` has passed."""
    for done, item in enumerate(items):
        if deadline is not None and time.monotonic() > deadline:
            raise NoTimeLeft(f"{what}: not done when the time for it ran out ({done} done)")
        yield item


def _differences(
    pairs: Iterable[tuple[ManifestFile, RemoteFile]],
    destination: Destination,
    source_sha1: SourceSha1 | None,
    deadline: float | None,
    read_back: ReadBack,
) -> tuple[list[str], list[str], dict[str, str]]:
    """(names whose size differs, names whose SHA-1 differs, what differs by name) of the
    (expected, held) pairs; hashes are compared only when ``source_sha1`` is given."""
    size_differs: list[str] = []
    hash_differs: list[str] = []
    details: dict[str, str] = {}
    for want, got in pairs:
        if got.size != want.size:
            size_differs.append(want.name)
            details[want.name] = f"size {got.size}, expected {want.size}"
        elif source_sha1 is not None:
            want_sha1, got_sha1 = source_sha1(want).lower(), _remote_sha1(destination, got, deadline, read_back).lower()
            if want_sha1 != got_sha1:
                hash_differs.append(want.name)
                details[want.name] = f"sha1 {got_sha1 or '(none reported)'}, expected {want_sha1}"
    return size_differs, hash_differs, details


def held_more_than_once(owned: Sequence[tuple[str, RemoteFile]], *, folds_case: bool) -> dict[str, str]:
    """{name: the sizes of its copies} for each name listed more than once (with ``folds_case``,
    every spelling of a name differing only in case)."""
    copies: dict[str, list[tuple[str, int]]] = {}
    for name, file in owned:
        copies.setdefault(name.casefold() if folds_case else name, []).append((name, file.size))
    held: dict[str, str] = {}
    for found in copies.values():
        if len(found) > 1:
            sizes = ", ".join(f"{size} bytes" for size in sorted(size for _, size in found))
            held.update({name: f"{len(found)} copies: {sizes}" for name, _ in found})
    return held


def _owned(
    files: Iterable[RemoteFile], folder: RemoteFolder, partial_suffixes: Sequence[str], own_names: set[str]
) -> Iterable[tuple[str, RemoteFile]]:
    """(name relative to the folder, file) for every listed file that belongs to this run.

    An exclusive folder belongs to the run entirely (files in sub-folders are extras too). In
    a shared folder only direct children matching the run's name pattern count, and so do
    ``.partial`` leftovers of such names.
    """
    base = normalize_path(folder.path)
    head = base + "/" if base else ""
    for f in files:
        path = normalize_path(f.path)
        if not path.startswith(head):
            continue
        name = path[len(head) :]
        if folder.exclusive:
            yield name, f
            continue
        if "/" in name:
            continue
        stem = partial_stem(name, partial_suffixes)
        if folder.owns(stem) or stem in own_names:
            yield name, f


def partial_stem(name: str, partial_suffixes: Sequence[str]) -> str:
    """The file a partial file will become (the name itself when it is not a partial)."""
    return next((name[: -len(s)] for s in partial_suffixes if name.endswith(s)), name)


def _remote_sha1(destination: Destination, file: RemoteFile, deadline: float | None, read_back: ReadBack) -> str:
    """The destination's SHA-1 when its listing has one, else the SHA-1 of the bytes read back
    (NoTimeLeft once ``deadline`` passes, checked between blocks: one file of many GB read back
    from a server that cannot hash may take longer than an invocation has)."""
    if file.sha1 and "sha1" in destination.abilities.hashes:
        return file.sha1
    if not isinstance(destination, Readable):
        # choose_check only picks sha1 for unreadable destinations that list hashes; a file
        # listed without one cannot be checked, so it can never compare equal by accident.
        return ""
    if (known := read_back.sha1_of(file)) is not None:
        return known

    in_time = stop_at(deadline, f"reading {file.path} back from {destination.name}", file.size)
    sha1 = sha1_of_stream(destination.open(file.path), before_block=in_time)
    read_back.add(file, sha1)
    return sha1
