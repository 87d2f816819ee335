"""The bytes of one GCS object generation, as an SFTP delivery reads them: one streaming GET, checked.

- Opened on the first ``read`` (a delivery that finds the file unchanged never touches GCS).
- One ``alt=media`` GET of the pinned generation with ``Accept-Encoding: gzip``: the stored
  bytes, never transcoded, read in large blocks straight from the socket. (``gcs.open_object``'s
  ranged 8 MB reads cost about half the upload's throughput on this path: bench/sftp_bench.py.)
- A connection that drops mid-stream is resumed with a ``Range`` request from the current
  offset, a few times, before the delivery fails with TransientError.
- At the end the CRC32C (MD5 if GCS has no CRC32C) of what was read must equal GCS's value,
  else TransientError: nothing corrupt is ever published.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
from typing import Any

import google_crc32c
import requests
import urllib3

from shared.errors import PermanentError, TransientError
from shared.gcp import clients, gcs
from shared.log import get_logger
from shared.retry import parse_retry_after

log = get_logger(__name__)
RESUMES = 3
TIMEOUT_S = (30.0, 120.0)  # connect, between bytes
_STREAM_ERRORS = (OSError, urllib3.exceptions.HTTPError, requests.RequestException, http.client.HTTPException)


class ObjectSource:
    """A readable (``read(n)``) over ``info``'s generation; see the module docstring."""

    def __init__(self, info: gcs.ObjectInfo, *, client: Any | None = None) -> None:
        self.info = info
        self._client = client
        self._response: Any = None
        self._offset = 0
        self._crc = google_crc32c.Checksum()
        # CRC32C is always there and cheap; MD5 (absent on composite objects) only as a fallback.
        self._md5 = hashlib.md5(usedforsecurity=False) if info.md5 and not info.crc32c else None
        self.uri = f"{gcs.uri(info.bucket, info.name)}#{info.generation}"

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

    def read(self, size: int = -1) -> bytes:
        left = self.info.size - self._offset
        if left <= 0:
            return b""
        want = left if size is None or size < 0 else min(size, left)
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
            self._check()
        return data

    def _check(self) -> None:
        self._drop()
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

    def close(self) -> None:
        self._drop()
