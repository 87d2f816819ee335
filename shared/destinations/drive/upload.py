"""Drive's resumable upload protocol: a session URI, chunks sent with ``Content-Range``, and
the status query that says how many bytes Drive holds (``308`` with ``Range: bytes=0-N``).

The file appears (or its content changes) only when the last byte arrives, so an interrupted
upload is never a partial file anyone sees. A chunk whose answer was lost is not guessed
about: the status query says where Drive stands and the rest of the chunk is sent from
there; so is the rest of a chunk Drive kept only part of (a 308 whose ``Range`` ends inside
it: Drive's protocol says to continue after that byte). A session lives a week on Drive; a gone session (404) means start again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import requests
from tenacity import retry_if_exception_type, retry_if_not_exception_type

from shared.destinations.base import ByteStream
from shared.destinations.drive.folders import ITEM_FIELDS
from shared.destinations.drive.http import DriveHttp, DriveNotFound
from shared.destinations.drive.readahead import read_exactly
from shared.errors import OffsiteError, TransientError
from shared.log import get_logger
from shared.retry import retrying

log = get_logger(__name__)

_RANGE = re.compile(r"bytes=0-(\d+)\Z")


class SessionGone(TransientError):
    """The upload session expired or was cancelled: the upload must start over, from the
    source's first byte, so only the next try of the whole put (a fresh source) can heal it."""


# Chunks are retried in-process, except into a gone session: asking it again only 404s again.
_RETRY_UNLESS_GONE = retry_if_exception_type(TransientError) & retry_if_not_exception_type(SessionGone)


@dataclass
class ResumableUpload:
    http: DriveHttp
    uri: str
    size: int

    @classmethod
    def start(cls, http: DriveHttp, size: int, metadata: dict[str, Any], *, file_id: str | None) -> ResumableUpload:
        """Open a session for a new file (``metadata`` with name and parents) or new content of ``file_id``."""
        method, url = ("PATCH", f"{http.upload}/files/{file_id}") if file_id else ("POST", f"{http.upload}/files")
        params = {"uploadType": "resumable", "supportsAllDrives": "true", "fields": ITEM_FIELDS}
        headers = {"X-Upload-Content-Length": str(size), "X-Upload-Content-Type": "application/octet-stream"}
        with http.call(
            method, url, what=f"start upload of {metadata.get('name')!r}", params=params, json=metadata, headers=headers
        ) as response:
            location = response.headers.get("Location")
        if not location:
            raise TransientError(f"{http.where}: Drive opened an upload session without a Location")
        return cls(http, location, size)

    def stored(self) -> int | dict[str, Any]:
        """Bytes Drive holds, or the file resource when the upload is complete; SessionGone if gone."""
        try:
            response = self.http.call(
                "PUT",
                self.uri,
                what="ask where the upload stands",
                headers={"Content-Range": f"bytes */{self.size}"},
                data=b"",
            )
        except DriveNotFound:
            raise self._gone() from None
        return self._outcome(response)

    @classmethod
    def resumed(
        cls,
        http: DriveHttp,
        resume: dict[str, Any] | None,
        target: dict[str, Any],
        source: ByteStream,
        hashes: tuple[Any, Any],
        where: str,
    ) -> tuple[ResumableUpload | None, int]:
        """The checkpointed session and the bytes it holds, with ``source`` read (and hashed) up
        to there; (None, 0) when there is nothing provable to resume."""
        if not resume or any(resume.get(k) != v for k, v in target.items()) or not resume.get("session"):
            return None, 0
        upload = cls(http, str(resume["session"]), target["size"])
        try:
            held = upload.stored()
        except SessionGone:
            log.info("checkpointed drive upload session is gone; starting a new one", destination=where)
            return None, 0
        if not isinstance(held, int) or held != int(resume.get("done", -1)):
            upload.cancel()  # complete or further than we can prove: start over
            return None, 0
        prefix = read_exactly(source, held, where)
        for h in hashes:
            h.update(prefix)
        if hashes[0].hexdigest() != resume.get("prefix_sha1"):
            upload.cancel()
            raise TransientError(
                f"{where}: the checkpointed upload holds other bytes than the source; the retry starts over"
            )
        return upload, held

    def send_whole(self, offset: int, chunk: bytes, path: str) -> int | dict[str, Any]:
        """:meth:`send` until Drive holds all of ``chunk``; TransientError when Drive holds fewer
        bytes than ``offset``, more than were sent, or keeps none of what is sent, three times."""
        start, end, stalls = offset, offset + len(chunk), 0
        while True:
            outcome = self.send(start, chunk[start - offset :])
            if isinstance(outcome, dict) or outcome == end:
                return outcome
            stalls = stalls + 1 if outcome == start else 0
            if not start <= outcome < end or stalls > 2:
                raise TransientError(f"{self.http.where}: {path}: Drive holds {outcome} bytes, expected {end}")
            log.info("drive kept part of a chunk; sending the rest", path=path, held=outcome, chunk_end=end)
            start = outcome

    def send(self, offset: int, chunk: bytes) -> int | dict[str, Any]:
        """Send ``chunk`` (starting at byte ``offset``); bytes now held, or the file when complete.

        A failed attempt asks where the upload stands and resends only what Drive lacks; a gone
        session raises SessionGone at once."""
        for attempt in retrying(
            f"{self.http.where}: upload chunk at {offset}", attempts=8, initial_s=0.2, max_wait_s=20.0
        ).copy(retry=_RETRY_UNLESS_GONE):
            with attempt:
                start = offset
                if attempt.retry_state.attempt_number > 1:
                    held = self.stored()
                    if isinstance(held, dict) or held >= offset + len(chunk):
                        return held
                    start = max(offset, held)
                part = chunk[start - offset :]
                last = start + len(part) - 1
                span = f"bytes {start}-{last}/{self.size}" if part else f"bytes */{self.size}"
                try:
                    response = self.http.call(
                        "PUT",
                        self.uri,
                        what=f"upload bytes {start}-{last}",
                        retry=False,
                        headers={"Content-Range": span},
                        data=part,
                    )
                except DriveNotFound:
                    raise self._gone() from None
                return self._outcome(response)
        raise AssertionError("unreachable: retrying re-raises")

    def _gone(self) -> SessionGone:
        return SessionGone(
            f"{self.http.where}: the upload session is gone (expired or cancelled); the next try starts over"
        )

    def cancel(self) -> None:
        """Drop the session (nothing of it is ever visible); a gone session is fine."""
        try:
            self.http.session.delete(
                self.uri, timeout=10, headers={"Authorization": f"Bearer {self.http.credentials.token()}"}
            )
        except (requests.RequestException, OffsiteError):
            pass  # it expires on its own

    @staticmethod
    def _outcome(response: requests.Response) -> int | dict[str, Any]:
        with response:
            if response.status_code == 308:
                found = _RANGE.match(response.headers.get("Range", ""))
                return int(found.group(1)) + 1 if found else 0
            file: dict[str, Any] = response.json()
            return file
