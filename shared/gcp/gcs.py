"""GCS helpers every stage uses: reads with bounded memory, writes with generation preconditions.

- reading an object's bytes is :mod:`shared.gcp.reader` (one reader for every stage);
- ``write_if_absent`` is the "exactly once" write (``if_generation_match=0``): True when this
  call created the object, False when it was already there (a redelivery, a concurrent twin);
  ``create_if_absent`` is the same write answering with the generation it created (or None);
- ``list_prefix`` / ``stat`` return :class:`ObjectInfo` (size, md5, crc32c, generation, metadata);
- ``set_metadata`` patches custom metadata, optionally only on a given generation;
- ``update_json`` is a read-modify-write of a small JSON record that loses no concurrent update
  (each write is conditional on the generation read; a lost race reads again).

google.api_core exceptions are mapped to offsite's kinds: 429/5xx/timeouts/connection errors →
``TransientError``; 401/403/400 → ``PermanentError``. A missing object is ``ObjectMissing`` (a
``PermanentError``; callers that expect "not there yet" catch it or use ``stat``/``read_json``).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import requests
from google.api_core import exceptions as gexc
from google.cloud.storage.retry import DEFAULT_RETRY

from shared.errors import PermanentError, TransientError
from shared.gcp import clients
from shared.gcp.api_errors import TRANSIENT_API_ERRORS
from shared.retry import retry_call

T = TypeVar("T")

_TRANSIENT: tuple[type[BaseException], ...] = (
    *TRANSIENT_API_ERRORS,
    gexc.RequestRangeNotSatisfiable,
    requests.ConnectionError,
    requests.Timeout,
)


class ObjectMissing(PermanentError):
    """The object (or the requested generation of it) does not exist."""


class GenerationMoved(PermanentError):
    """A write conditioned on a generation found another one live: the object was replaced."""


# The client library retries inside each of our attempts (shared.retry's, bounded by the
# invocation's end): 120 s by default, four times over. A few seconds there is enough.
LIBRARY_RETRY = DEFAULT_RETRY.with_timeout(20.0)
LIST_PAGE_SIZE = 1_000  # objects per list page: GCS's default and maximum


@dataclass(frozen=True)
class ObjectInfo:
    """What GCS says about one object generation."""

    bucket: str
    name: str
    size: int
    generation: int
    md5: str | None = None  # base64, as GCS reports it
    crc32c: str | None = None  # base64, as GCS reports it
    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    time_created: dt.datetime | None = None

    @classmethod
    def from_blob(cls, blob: Any) -> ObjectInfo:
        return cls(
            bucket=blob.bucket.name,
            name=blob.name,
            size=int(blob.size or 0),
            generation=int(blob.generation or 0),
            md5=blob.md5_hash,
            crc32c=blob.crc32c,
            content_type=blob.content_type,
            metadata=dict(blob.metadata or {}),
            time_created=blob.time_created,
        )


@contextmanager
def mapped_errors(what: str) -> Iterator[None]:
    """Translate google/requests exceptions raised inside the block into offsite's error kinds."""
    try:
        yield
    except gexc.NotFound as exc:
        raise ObjectMissing(f"{what}: not found ({exc.message if hasattr(exc, 'message') else exc})") from None
    except _TRANSIENT as exc:
        raise TransientError(f"{what}: {exc.__class__.__name__}: {exc}") from exc
    except (gexc.Forbidden, gexc.Unauthorized) as exc:
        raise PermanentError(
            f"{what}: access denied ({exc.__class__.__name__}: {exc}); check the service account's roles"
        ) from None
    except gexc.BadRequest as exc:
        raise PermanentError(f"{what}: rejected by GCS ({exc})") from None


def _client(client: Any | None) -> Any:
    return client if client is not None else clients.storage_client()


def uri(bucket: str, name: str) -> str:
    return f"gs://{bucket}/{name}"


# ---- reading ---------------------------------------------------------------------------------


def stat(
    bucket: str, name: str, generation: int | None = None, *, client: Any | None = None, missing_ok: bool = True
) -> ObjectInfo | None:
    """The object's :class:`ObjectInfo`, or None when it does not exist (ObjectMissing if not missing_ok)."""
    blob = _client(client).bucket(bucket).blob(name, generation=generation)
    what = f"stat {uri(bucket, name)}" + (f"#{generation}" if generation else "")
    try:
        _retried(what, lambda: blob.reload(retry=LIBRARY_RETRY))
    except ObjectMissing:
        if missing_ok:
            return None
        raise
    return ObjectInfo.from_blob(blob)


def _retried(what: str, action: Callable[[], T]) -> T:
    """``action()`` with its errors mapped (:func:`mapped_errors`), retried while transient (4 attempts)."""

    def once() -> T:
        with mapped_errors(what):
            return action()

    return retry_call(once, what, attempts=4)


def read_bytes(bucket: str, name: str, *, client: Any | None = None, max_bytes: int = 16 * 1024 * 1024) -> bytes | None:
    """A small object's content, or None when it does not exist (control files: _run.json, manifests)."""
    blob = _client(client).bucket(bucket).blob(name)
    what = f"reading {uri(bucket, name)}"

    def download() -> bytes:
        try:
            return bytes(blob.download_as_bytes(end=max_bytes, retry=LIBRARY_RETRY))
        except gexc.RequestRangeNotSatisfiable:
            return b""  # GCS answers 416 to any range of an empty object

    try:
        data = _retried(what, download)
    except ObjectMissing:
        return None
    if len(data) > max_bytes:
        raise PermanentError(f"{what}: larger than {max_bytes} bytes; not a control file")
    return data


def read_json(bucket: str, name: str, *, client: Any | None = None) -> Any | None:
    """Parsed JSON of a small object, or None when it does not exist. Bad JSON is a PermanentError."""
    data = read_bytes(bucket, name, client=client)
    if data is None:
        return None
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PermanentError(f"{uri(bucket, name)}: not valid JSON ({exc})") from None


def list_prefix(bucket: str, prefix: str, *, client: Any | None = None) -> list[ObjectInfo]:
    """Every live object whose name starts with ``prefix``, sorted by name."""
    return sorted(fold_prefix(bucket, prefix, list, client=client), key=lambda o: o.name)


def fold_prefix(
    bucket: str,
    prefix: str,
    summarize: Callable[[Iterator[ObjectInfo]], T],
    *,
    start_offset: str = "",
    client: Any | None = None,
) -> T:
    """``summarize`` applied to every live object under ``prefix``, handed over page by page as
    GCS lists them and never held all at once: a scan of a bucket's whole retained history (the
    sweeps) costs the summary's memory, not ~600 bytes per object. On a transient failure the
    whole listing is retried and ``summarize`` starts afresh on a new iterator. ``start_offset``:
    only names from it on (GCS's ``startOffset``, inclusive), to resume a listing left off.
    ``summarize`` may stop early: the pages after it are never fetched."""
    what = f"listing {uri(bucket, prefix)}"

    def listing() -> T:
        # GCS's own page size, said out loud: fake-gcs-server otherwise answers in one page
        blobs = _client(client).list_blobs(
            bucket, prefix=prefix, page_size=LIST_PAGE_SIZE, start_offset=start_offset or None, retry=LIBRARY_RETRY
        )
        return summarize(ObjectInfo.from_blob(b) for b in blobs)

    return _retried(what, listing)


# ---- writing ---------------------------------------------------------------------------------


def write(
    bucket: str,
    name: str,
    data: bytes,
    content_type: str = "application/octet-stream",
    *,
    if_generation_match: int | None = None,
    metadata: dict[str, str] | None = None,
    client: Any | None = None,
) -> ObjectInfo:
    """Upload ``data`` (md5-checked by the client); preconditions as GCS defines them.

    A failed precondition propagates as google.api_core.exceptions.PreconditionFailed.
    """
    blob = _client(client).bucket(bucket).blob(name)
    if metadata:
        blob.metadata = dict(metadata)
    what = f"writing {uri(bucket, name)}"

    def upload() -> None:
        blob.upload_from_string(
            data,
            content_type=content_type,
            if_generation_match=if_generation_match,
            checksum="md5",
            retry=LIBRARY_RETRY,
        )

    _retried(what, upload)
    return ObjectInfo.from_blob(blob)


UPDATE_ATTEMPTS = 8


def update_json(
    bucket: str,
    name: str,
    change: Callable[[Any | None], Any],
    *,
    attempts: int = UPDATE_ATTEMPTS,
    client: Any | None = None,
) -> Any:
    """Replace the JSON record ``name`` with ``change(current)`` (``current`` is None when it is
    absent) and return what was written. The write is conditional on the generation that was read
    (0: still absent), so two writers racing never drop each other's change: the loser reads the
    winner's record and applies its change again. ``change`` must be a pure function of its input.
    TransientError when ``attempts`` writes in a row lost their race."""
    for _ in range(attempts):
        read = read_with_generation(bucket, name, client=client)
        current, generation = None, 0
        if read is not None:
            data, generation = read
            try:
                current = json.loads(data)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise PermanentError(f"{uri(bucket, name)}: not valid JSON ({exc})") from None
        updated = change(current)
        body = json.dumps(updated, sort_keys=True).encode()
        if _write_once(bucket, name, body, "application/json", generation, None, client) is not None:
            return updated
        # another writer got in between: apply the change to its record
    raise TransientError(f"updating {uri(bucket, name)}: {attempts} conditional writes in a row lost a race")


def read_with_generation(bucket: str, name: str, *, client: Any | None = None) -> tuple[bytes, int] | None:
    """A small object's content and the generation it is (None: absent), in one request: GCS
    names the generation it served in the download's ``x-goog-generation`` header."""
    blob = _client(client).bucket(bucket).blob(name)
    what = f"reading {uri(bucket, name)}"
    try:
        data: bytes = _retried(what, lambda: blob.download_as_bytes(retry=LIBRARY_RETRY))
    except ObjectMissing:
        return None
    if blob.generation is None:
        raise PermanentError(f"{what}: the server named no generation (x-goog-generation) for the bytes it sent")
    return data, int(blob.generation)


def write_if_absent(
    bucket: str,
    name: str,
    data: bytes,
    content_type: str = "application/octet-stream",
    *,
    metadata: dict[str, str] | None = None,
    client: Any | None = None,
) -> bool:
    """Create ``name`` only if no live generation exists. True: created now; False: it was there."""
    return create_if_absent(bucket, name, data, content_type, metadata=metadata, client=client) is not None


def create_if_absent(
    bucket: str,
    name: str,
    data: bytes,
    content_type: str = "application/octet-stream",
    *,
    metadata: dict[str, str] | None = None,
    client: Any | None = None,
) -> int | None:
    """:func:`write_if_absent` for a caller that needs the generation it created (to delete only
    that one later): the generation, or None when the object was there."""
    return _write_once(bucket, name, data, content_type, 0, metadata, client)


WRITER_KEY = "offsite-writer"


def _write_once(
    bucket: str,
    name: str,
    data: bytes,
    content_type: str,
    if_generation_match: int,
    metadata: dict[str, str] | None,
    client: Any | None,
) -> int | None:
    """A conditional write: the generation it wrote when it took, None when another writer's got
    in first.

    The write carries a token of its own: when its answer is lost after GCS stored it, the retry
    (ours or the client library's) meets its own object and gets 412, and the token tells that
    this write took (without it, a claim made this way reads as someone else's, and the result it
    guards is never published by anyone)."""
    token = uuid.uuid4().hex
    try:
        written = write(
            bucket,
            name,
            data,
            content_type,
            if_generation_match=if_generation_match,
            metadata={**(metadata or {}), WRITER_KEY: token},
            client=client,
        )
    except gexc.PreconditionFailed:
        try:
            there = stat(bucket, name, client=client)
        except PermanentError:  # not allowed to read it back: as before the token, someone else's
            return None
        return there.generation if there is not None and there.metadata.get(WRITER_KEY) == token else None
    return written.generation


def set_metadata(
    bucket: str,
    name: str,
    metadata: Mapping[str, str | None],
    *,
    if_generation_match: int | None = None,
    client: Any | None = None,
) -> ObjectInfo:
    """Merge ``metadata`` into the object's custom metadata (e.g. {"sha1": ...}; a None value
    removes its key).

    With ``if_generation_match`` only that generation is patched; another generation is
    :class:`GenerationMoved` (the object was replaced; the caller's facts belong to the old one).
    """
    blob = _client(client).bucket(bucket).blob(name)
    blob.metadata = dict(metadata)
    what = f"setting metadata on {uri(bucket, name)}"

    try:
        _retried(what, lambda: blob.patch(if_generation_match=if_generation_match, retry=LIBRARY_RETRY))
    except gexc.PreconditionFailed:
        raise GenerationMoved(f"{what}: generation {if_generation_match} is no longer the live one") from None
    return ObjectInfo.from_blob(blob)


def delete(bucket: str, name: str, *, if_generation_match: int | None = None, client: Any | None = None) -> bool:
    """Remove ``name`` (only that generation, when given). False when it was not there, or is
    another generation now; never an error."""
    blob = _client(client).bucket(bucket).blob(name)
    what = f"deleting {uri(bucket, name)}"

    try:
        _retried(what, lambda: blob.delete(if_generation_match=if_generation_match, retry=LIBRARY_RETRY))
    except ObjectMissing:
        return False
    except gexc.PreconditionFailed:
        return False
    return True
