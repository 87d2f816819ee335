"""Errors shaped as BigQuery reports them: ``{"reason", "message", "location"?}`` and HTTP codes.

A :class:`JobFailure` raised while a job runs ends the job DONE with ``status.errorResult``
(and ``status.errors``); :func:`error_body` is the body of a failed HTTP call
(``{"error": {"code", "message", "errors": [...], "status"}}``), which google-cloud-bigquery
turns into ``google.api_core.exceptions`` by code.
"""

from __future__ import annotations

from typing import Any

HTTP_STATUS = {"notFound": 404, "duplicate": 409, "invalid": 400, "invalidQuery": 400, "backendError": 500}
STATUS_TEXT = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 409: "ALREADY_EXISTS", 500: "INTERNAL"}


class JobFailure(Exception):
    """A job (or request) fails with BigQuery's ``reason`` and ``message``."""

    def __init__(self, reason: str, message: str, location: str | None = None) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.location = location

    def error_proto(self) -> dict[str, Any]:
        """The ErrorProto of ``status.errorResult`` / ``status.errors[]``."""
        proto: dict[str, Any] = {"reason": self.reason, "message": self.message}
        if self.location:
            proto["location"] = self.location
        return proto

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.reason, 400)


def duplicate_job(project: str, location: str, job_id: str) -> JobFailure:
    """BigQuery's answer to a jobs.insert whose id is taken (409)."""
    return JobFailure("duplicate", f"Already Exists: Job {project}:{location}.{job_id}")


def error_body(failure: JobFailure) -> dict[str, Any]:
    """The JSON body BigQuery sends with a failed HTTP call."""
    code = failure.http_status
    return {
        "error": {
            "code": code,
            "message": failure.message,
            "errors": [{**failure.error_proto(), "domain": "global"}],
            "status": STATUS_TEXT.get(code, "UNKNOWN"),
        }
    }
