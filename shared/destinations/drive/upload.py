"""Drive's resumable upload protocol: a session URI, chunks sent with ``Content-Range``, and
the status query that says how many bytes Drive holds (``308`` with ``Range: bytes=0-N``).

The file appears (or its content changes) only when the last byte arrives, so an interrupted
upload is never a partial file anyone sees. A chunk whose answer was lost is not guessed
about: the status query says where Drive stands and the rest of the chunk is sent from
there. A session lives a week on Drive; a gone session (404) means start again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import requests

from shared.destinations.drive.folders import ITEM_FIELDS
from shared.destinations.drive.http import DriveHttp, DriveNotFound
from shared.errors import OffsiteError, TransientError
from shared.retry import retrying

_RANGE = re.compile(r"bytes=0-(\d+)\Z")


class SessionGone(TransientError):
    """The upload session expired or was cancelled: the upload must start over."""


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
            raise SessionGone(f"{self.http.where}: the upload session is gone (expired or cancelled)") from None
        return self._outcome(response)

    def send(self, offset: int, chunk: bytes) -> int | dict[str, Any]:
        """Send ``chunk`` (starting at byte ``offset``); bytes now held, or the file when complete.

        A failed attempt asks where the upload stands and resends only what Drive lacks."""
        for attempt in retrying(
            f"{self.http.where}: upload chunk at {offset}", attempts=8, initial_s=0.2, max_wait_s=20.0
        ):
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
                    raise SessionGone(f"{self.http.where}: the upload session is gone (expired or cancelled)") from None
                return self._outcome(response)
        raise AssertionError("unreachable: retrying re-raises")

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
