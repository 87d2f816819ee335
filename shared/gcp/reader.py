"""The one way offsite reads an object's bytes from GCS: :class:`ObjectReader`.

Every backend's upload and verify's read-back use it:

- **pinned**: one generation is read; if it vanishes (replaced, deleted) the read fails with
  ``gcs.ObjectMissing`` instead of mixing two versions. Callers re-judge staleness then
  (:mod:`shared.delivery.freshness`).
- **streamed**: one ``alt=media`` GET with ``Accept-Encoding: gzip`` (the stored bytes, never
  transcoded), read in large blocks straight from the socket; no temp file, bounded memory.
  Ranged: ``start`` begins at an offset (a resumed transfer); a connection that drops is
  resumed with a ``Range`` request from the current offset, a few times, before TransientError.
- **prefetching** (optional): a thread reads up to ``prefetch`` blocks ahead, so the GCS read
  overlaps the destination's write.
- **hashing on the way**: CRC32C (MD5 where GCS has no CRC32C) of a whole read is checked
  against GCS at the end (TransientError on a difference: nothing corrupt is ever published),
  and with ``hash_sha1`` :attr:`ObjectReader.sha1` is the SHA-1 of what was read. Only when asked:
  every destination hashes what it sends itself (per part, per resumed block), and a second
  SHA-1 of every byte was a third of the SFTP upload's own CPU (docs/performance.md).

Opened lazily on the first ``read``: a delivery that finds the file unchanged never touches GCS.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import queue
import threading
from typing import Any, cast

import google_crc32c
import requests
import urllib3

from shared.errors import PermanentError, TransientError
from shared.gcp import clients, gcs
from shared.log import get_logger, in_context
from shared.retry import parse_retry_after, retry_call

log = get_logger(__name__)
RESUMES = 3
TIMEOUT_S = (30.0, 120.0)  # connect, between bytes
BLOCK_BYTES = 1024 * 1024
_STREAM_ERRORS = (OSError, urllib3.exceptions.HTTPError, requests.RequestException, http.client.HTTPException)
_END = object()


class ObjectReader(io.RawIOBase):
    """A readable stream over ``info``'s generation from byte ``start``; see the module docstring."""

    def __init__(
        self,
        info: gcs.ObjectInfo,
        *,
        start: int = 0,
        prefetch: int = 0,
        client: Any | None = None,
        hash_sha1: bool = False,
    ) -> None:
        super().__init__()
        if not 0 <= start <= info.size:
            raise ValueError(f"start {start} is outside {gcs.uri(info.bucket, info.name)} ({info.size} bytes)")
        self.info = info
        self.uri = f"{gcs.uri(info.bucket, info.name)}#{info.generation}"
        self._client = client
        self._response: Any = None
        self._offset = start  # bytes fetched from GCS so far (the fetch position)
        self._whole = start == 0
        self._crc = google_crc32c.Checksum()
        self._sha1 = hashlib.sha1(usedforsecurity=False) if hash_sha1 else None
        # CRC32C is always there and cheap; MD5 (absent on composite objects) only as a fallback.
        self._md5 = hashlib.md5(usedforsecurity=False) if info.md5 and not info.crc32c else None
        self._prefetch = _Prefetcher(self._fetch, prefetch) if prefetch > 0 else None
        self._pending = b""
        self._returned = start

    # -- the public stream

    def readable(self) -> bool:
        return True

    @property
    def position(self) -> int:
        """How many bytes of the object lie before the next byte ``read`` returns."""
        return self._returned

    @property
    def sha1(self) -> str:
        """Hex SHA-1 of the bytes returned so far (of the whole object once read to the end from 0)."""
        if self._sha1 is None:
            raise RuntimeError(f"{self.uri}: opened without hash_sha1; its SHA-1 was not computed")
        return self._sha1.hexdigest()

    def read(self, size: int | None = -1) -> bytes:
        want = None if size is None or size < 0 else size
        parts, got = [], 0
        while want is None or got < want:
            block = self._next_block(BLOCK_BYTES if want is None else want - got)
            if not block:
                break
            parts.append(block)
            got += len(block)
        data = b"".join(parts)
        if self._sha1 is not None:
            self._sha1.update(data)
        self._returned += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self._prefetch is not None:
            self._prefetch.stop()
        self._drop()
        super().close()

    # -- blocks

    def _next_block(self, limit: int) -> bytes:
        if not self._pending:
            self._pending = self._prefetch.get() if self._prefetch else self._fetch(max(limit, BLOCK_BYTES))
        block, self._pending = self._pending[:limit], self._pending[limit:]
        return block

    def _fetch(self, size: int = BLOCK_BYTES) -> bytes:
        """The next ``size`` bytes from GCS (b"" at the end), resuming a dropped stream."""
        left = self.info.size - self._offset
        if left <= 0:
            return b""
        want = min(size, left)
        last: BaseException | None = None
        for _ in range(RESUMES + 1):
            try:
                if self._response is None:
                    self._open()
                data = self._response.raw.read(want, decode_content=False)
                if not data:
                    raise ConnectionError(f"stream ended at byte {self._offset} of {self.info.size}")
                break
            except _STREAM_ERRORS as exc:
                last = exc
                self._drop()
                log.warning("GCS stream interrupted; resuming", object=self.uri, offset=self._offset, error=str(exc))
        else:
            raise TransientError(f"reading {self.uri}: {last.__class__.__name__}: {last}") from last
        self._crc.update(data)
        if self._md5 is not None:
            self._md5.update(data)
        self._offset += len(data)
        if self._offset == self.info.size:
            self._drop()
            if self._whole:
                self._check()
        return bytes(data)

    def _open(self) -> None:
        client = self._client or clients.storage_client()
        blob = client.bucket(self.info.bucket).blob(self.info.name, generation=self.info.generation)
        headers = {"Accept-Encoding": "gzip"}
        if self._offset:
            headers["Range"] = f"bytes={self._offset}-"
        response = client._http.get(blob._get_download_url(client), headers=headers, stream=True, timeout=TIMEOUT_S)
        status = response.status_code
        if status in (200, 206) and (status == 206) == bool(self._offset):
            self._response = response
            return
        detail = response.text[:200] if not response.ok else f"status {status} for offset {self._offset}"
        response.close()
        if status == 404:
            raise gcs.ObjectMissing(f"reading {self.uri}: not found")
        if status in (401, 403):
            raise PermanentError(f"reading {self.uri}: access denied ({status}); check the service account's roles")
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise TransientError(f"reading {self.uri}: GCS answered {status}", retry_after=retry_after)
        raise TransientError(f"reading {self.uri}: unexpected answer ({detail})")

    def _check(self) -> None:
        crc = base64.b64encode(self._crc.digest()).decode()
        if self.info.crc32c and crc != self.info.crc32c:
            raise TransientError(f"reading {self.uri}: CRC32C of the bytes read is {crc}, GCS says {self.info.crc32c}")
        if self._md5 is not None:
            md5 = base64.b64encode(self._md5.digest()).decode()
            if md5 != self.info.md5:
                raise TransientError(f"reading {self.uri}: MD5 of the bytes read is {md5}, GCS says {self.info.md5}")

    def _drop(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None


class _Prefetcher:
    """Calls ``fetch`` in a thread, keeping up to ``depth`` blocks ready; errors surface in ``get``."""

    def __init__(self, fetch: Any, depth: int) -> None:
        self._fetch = fetch
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stopped = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=in_context(self._run), name="gcs-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stopped.is_set():
                block = self._fetch()
                if not block:
                    break
                self._put(block)
        except BaseException as exc:  # noqa: BLE001 - handed to the reader's thread, raised there
            self._put(exc)
            return
        self._put(_END)

    def _put(self, item: Any) -> None:
        while not self._stopped.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def get(self) -> bytes:
        if self._done:
            return b""
        item = self._queue.get()
        if item is _END:
            self._done = True
            return b""
        if isinstance(item, BaseException):
            self._done = True
            raise item
        return bytes(item)

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)


def open_object(
    bucket: str,
    name: str,
    generation: int | None = None,
    *,
    prefetch: int = 0,
    client: Any | None = None,
    hash_sha1: bool = False,
) -> io.BufferedReader:
    """A buffered stream of ``name`` (that ``generation``, else the live one), read by ObjectReader.

    ``.raw`` is the :class:`ObjectReader` (``.raw.info``: the pinned ObjectInfo). Raises
    ObjectMissing / TransientError.
    """
    info = gcs.stat(bucket, name, generation, client=client, missing_ok=False)
    assert info is not None
    reader = ObjectReader(info, prefetch=prefetch, client=client, hash_sha1=hash_sha1)
    return io.BufferedReader(reader, buffer_size=BLOCK_BYTES)


def sha1_of_live(bucket: str, name: str, *, attempts: int = 3) -> str:
    """Hex SHA-1 of the live generation of ``name``, read in blocks (bounded memory) and hashed
    once, by the ObjectReader on the way.

    A generation replaced while it is read (in the cloud a re-export; on fake-gcs-server also an
    upload function recording its SHA-1 as metadata, which gives the object a new generation) is
    read again from the live one; PermanentError (ObjectMissing) only when the object is gone."""
    where = gcs.uri(bucket, name)

    def read_once() -> str:
        try:
            with open_object(bucket, name, prefetch=4, hash_sha1=True) as stream:
                while stream.read(BLOCK_BYTES):  # the ObjectReader underneath hashes what it returns
                    pass
                return cast(ObjectReader, stream.raw).sha1
        except gcs.ObjectMissing as exc:
            if gcs.stat(bucket, name, missing_ok=True) is None:
                raise gcs.ObjectMissing(f"{where}: gone from GCS; cannot hash it") from None
            raise TransientError(f"{exc}; hashing the live generation again") from None

    return retry_call(read_once, f"hashing {where}", attempts=attempts)
