"""What the front remembers of finished jobs bqemulator ran: a DONE job never changes.

bqemulator (Python, one query at a time) answers requests in turn, so a ``jobs.get`` or a
``getQueryResults`` of a finished job waits behind whatever query it is running; BigQuery answers
those at once. offsite re-attaches to its jobs by id (the request handler, each completion event
and the sweep all look), so one finished job is read many times: 19 bqemulator requests for one
table's fingerprint job in a 100-table run, each seconds late. The front keeps

- each DONE job resource it passed on (an insert's answer, a ``jobs.get`` answer): ``jobs.get``
  and "is this id taken?" (the 409 check) are answered from it;
- each complete ``getQueryResults`` answer up to ``max_answer_bytes``, under its exact query
  string (the same page with the same options).

Bounded: the least recently used entries go first. A job deleted in bqemulator behind the
front's back would still be answered from here (offsite never deletes its jobs).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any

MAX_ENTRIES = 4096
MAX_ANSWER_BYTES = 256 * 1024


class FinishedJobs:
    def __init__(self, max_entries: int = MAX_ENTRIES, max_answer_bytes: int = MAX_ANSWER_BYTES) -> None:
        self.max_entries, self.max_answer_bytes = max_entries, max_answer_bytes
        self._entries: OrderedDict[tuple[str, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    def job(self, project: str, job_id: str) -> dict[str, Any] | None:
        found = self._get(("job", project, job_id))
        return dict(found) if found is not None else None

    def remember_job(self, resource: dict[str, Any]) -> None:
        """Keep ``resource`` if it is a DONE job."""
        ref = resource.get("jobReference") or {}
        if (resource.get("status") or {}).get("state") == "DONE" and ref.get("projectId") and ref.get("jobId"):
            self._put(("job", str(ref["projectId"]), str(ref["jobId"])), resource)

    def answer(self, project: str, job_id: str, query: str) -> bytes | None:
        found = self._get(("results", project, job_id, query))
        return found if isinstance(found, bytes) else None

    def remember_answer(self, project: str, job_id: str, query: str, body: bytes) -> None:
        """Keep a getQueryResults answer that says the job is complete (small ones only)."""
        if len(body) > self.max_answer_bytes:
            return
        try:
            complete = json.loads(body).get("jobComplete") is True
        except (ValueError, AttributeError):
            return
        if complete:
            self._put(("results", project, job_id, query), body)

    def _get(self, key: tuple[str, ...]) -> Any:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def _put(self, key: tuple[str, ...], value: Any) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
