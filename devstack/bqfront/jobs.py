"""The front's own jobs: extract and EXPORT DATA, kept in memory, run in background threads.

A job is created PENDING by ``JobStore.insert`` (409 ``duplicate`` when its id exists here or
in bqemulator), goes RUNNING when one of the store's ``max_running`` places is free (BigQuery
too queues jobs PENDING until it has capacity; here each running job reads its rows from the
one bqemulator, and since export_table no longer holds a request per job, a 500-table dataset
would otherwise start 500 reads at once on two cores) and DONE at the end, with
``status.errorResult`` + ``status.errors`` when it failed. Its resource follows BigQuery's Job
(jobReference with location, configuration with jobType, statistics with creation/start/end
times, ``extract.destinationUriFileCounts`` or ``query.exportDataStatistics``). Jobs are lost
when the front stops, as bqemulator's own (``--ephemeral``) are.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devstack.bqfront.errors import JobFailure, duplicate_job

logger = logging.getLogger("devstack.bqfront")
DEFAULT_LOCATION = "US"
DEFAULT_MAX_RUNNING = 8  # jobs RUNNING at once; a held job (tests) holds its place too


def _now_ms() -> str:
    return str(int(time.time() * 1000))


@dataclass
class Job:
    """One job's resource and the event set when it is DONE."""

    resource: dict[str, Any]
    done: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def job_id(self) -> str:
        return str(self.resource["jobReference"]["jobId"])

    @property
    def failure(self) -> dict[str, Any] | None:
        return self.resource["status"].get("errorResult")

    def snapshot(self) -> dict[str, Any]:
        """A copy of the resource, safe to serialise while the job runs."""
        with self.lock:
            return copy.deepcopy(self.resource)

    def set_running(self) -> None:
        with self.lock:
            self.resource["status"] = {"state": "RUNNING"}
            self.resource["statistics"]["startTime"] = _now_ms()

    def finish(self, statistics: dict[str, Any] | None = None, failure: JobFailure | None = None) -> None:
        with self.lock:
            stats = self.resource["statistics"]
            stats.setdefault("startTime", _now_ms())
            stats["endTime"] = _now_ms()
            stats.update(statistics or {})
            status: dict[str, Any] = {"state": "DONE"}
            if failure is not None:
                status["errorResult"] = failure.error_proto()
                status["errors"] = [failure.error_proto()]
            self.resource["status"] = status
        self.done.set()


def new_resource(project: str, body: dict[str, Any], job_type: str, base_url: str) -> dict[str, Any]:
    """The PENDING resource of an inserted job (job id chosen by the caller or generated)."""
    reference = dict(body.get("jobReference") or {})
    job_id = reference.get("jobId") or f"bqfront_{uuid.uuid4().hex}"
    location = reference.get("location") or DEFAULT_LOCATION
    configuration = copy.deepcopy(body.get("configuration") or {})
    configuration["jobType"] = job_type
    return {
        "kind": "bigquery#job",
        "etag": uuid.uuid4().hex,
        "id": f"{project}:{location}.{job_id}",
        "selfLink": f"{base_url}/bigquery/v2/projects/{project}/jobs/{job_id}?location={location}",
        "user_email": "local-stack@bqfront",
        "jobReference": {"projectId": project, "jobId": job_id, "location": location},
        "configuration": configuration,
        "status": {"state": "PENDING"},
        "statistics": {"creationTime": _now_ms()},
    }


Work = Callable[[Job], dict[str, Any]]  # runs the job; returns statistics to merge, raises JobFailure


class JobStore:
    """Jobs by (project, job id); ``insert`` starts ``work`` in a daemon thread; ``on_done(resource)``
    is called once each job is DONE (the audit-log entry)."""

    def __init__(
        self, on_done: Callable[[dict[str, Any]], None] | None = None, max_running: int = DEFAULT_MAX_RUNNING
    ) -> None:
        if max_running < 1:
            raise ValueError(f"max_running: {max_running} must be at least 1")
        self._jobs: dict[tuple[str, str], Job] = {}
        self._lock = threading.Lock()
        self._running = threading.BoundedSemaphore(max_running)
        self.on_done = on_done

    def get(self, project: str, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get((project, job_id))

    def delete(self, project: str, job_id: str) -> bool:
        with self._lock:
            return self._jobs.pop((project, job_id), None) is not None

    def insert(self, resource: dict[str, Any], work: Work) -> tuple[Job, dict[str, Any]]:
        """Register and start the job; returns it and its PENDING resource (the insert's answer).

        JobFailure(duplicate) when the id is taken.
        """
        ref = resource["jobReference"]
        key = (ref["projectId"], ref["jobId"])
        job = Job(resource)
        with self._lock:
            if key in self._jobs:
                raise duplicate_job(ref["projectId"], ref["location"], ref["jobId"])
            self._jobs[key] = job
        snapshot = job.snapshot()  # the insert answers PENDING, as BigQuery's usually does
        threading.Thread(target=self._run, args=(job, work), name=f"job-{ref['jobId']}", daemon=True).start()
        return job, snapshot

    def _run(self, job: Job, work: Work) -> None:
        with self._running:  # PENDING until a place is free
            logger.info("job %s started (%s)", job.job_id, job.resource["configuration"].get("jobType"))
            job.set_running()
            try:
                statistics = work(job)
            except JobFailure as failure:
                logger.info("job %s failed: %s", job.job_id, failure)
                job.finish(failure=failure)
            except Exception as exc:  # a bug or an emulator crash: the job fails like a backend error
                logger.exception("job %s crashed", job.job_id)
                job.finish(failure=JobFailure("backendError", f"local BigQuery front: {exc.__class__.__name__}: {exc}"))
            else:
                job.finish(statistics=statistics)
                logger.info("job %s done: %s", job.job_id, statistics)
        if self.on_done is not None:  # DONE: its place is free before the notification goes out
            try:
                self.on_done(job.snapshot())
            except Exception:  # the job's outcome stands whatever happens to its notification
                logger.exception("job %s: DONE notification failed", job.job_id)
