"""What the front tells the rest of the stack about its jobs: BigQuery's audit-log entries.

When a job ends (DONE, succeeded or failed), BigQuery writes a Cloud Audit Logs entry
(``protoPayload.methodName = google.cloud.bigquery.v2.JobService.InsertJob``,
``metadata.jobChange.after = DONE``, BigQueryAuditMetadata) and Eventarc turns it into a
``google.cloud.audit.log.v1.written`` CloudEvent. The front builds the same LogEntry for each job
it runs, and for each job bqemulator answers DONE to an insert sent through the front (bqemulator
runs a query inside the request), and publishes it (JSON) to a Pub/Sub topic of the emulator
(``--audit-topic``); the stack's relay (devstack/relay.py) wraps it into the CloudEvent Eventarc
would deliver. Publishing is best effort, as Cloud Logging → Eventarc is: a failure is logged,
the job is not affected.

Holds (fault injection for tests): a job whose id starts with a held prefix stays RUNNING
(no files written) until the prefix is released — ``POST /_bqfront/holds {"prefix": P}``,
``DELETE /_bqfront/holds/{P}``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
import threading
import urllib.request
import uuid
from typing import Any

logger = logging.getLogger("devstack.bqfront")
SERVICE = "bigquery.googleapis.com"
METHOD = "google.cloud.bigquery.v2.JobService.InsertJob"
AUDIT_METADATA = "type.googleapis.com/google.cloud.audit.BigQueryAuditMetadata"
PUBLISH_TIMEOUT_S = 10.0
# google.rpc.Code of BigQuery's reasons (what an audit entry's status carries)
RPC_CODES = {"notFound": 5, "duplicate": 6, "invalid": 3, "invalidQuery": 3, "backendError": 13, "accessDenied": 7}


def _ms_to_rfc3339(ms: str | None) -> str | None:
    if not ms:
        return None
    stamp = dt.datetime.fromtimestamp(int(ms) / 1000, dt.UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def log_entry(resource: dict[str, Any]) -> dict[str, Any]:
    """The Cloud Audit Logs entry BigQuery writes when the job ``resource`` reaches DONE."""
    ref = resource["jobReference"]
    project, job_id, location = ref["projectId"], ref["jobId"], ref.get("location") or "US"
    status = resource.get("status") or {}
    error = status.get("errorResult")
    stats = resource.get("statistics") or {}
    job_status: dict[str, Any] = {"jobState": "DONE"}
    rpc_status: dict[str, Any] = {}
    if error:
        code = RPC_CODES.get(str(error.get("reason")), 2)
        job_status["errorResult"] = {"code": code, "message": error.get("message", "")}
        job_status["errors"] = [{"code": code, "message": e.get("message", "")} for e in status.get("errors") or []]
        rpc_status = {"code": code, "message": error.get("message", "")}
    config = resource.get("configuration") or {}
    job_config: dict[str, Any] = {"type": "EXPORT" if config.get("extract") else "QUERY"}
    if config.get("extract"):
        extract = config["extract"]
        job_config["extractConfig"] = {
            "destinationUris": list(extract.get("destinationUris") or []),
            "sourceTable": "projects/{projectId}/datasets/{datasetId}/tables/{tableId}".format(
                **(extract.get("sourceTable") or {"projectId": "", "datasetId": "", "tableId": ""})
            ),
        }
    elif config.get("query"):
        job_config["queryConfig"] = {"query": (config["query"] or {}).get("query", "")}
    now = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return {
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "status": rpc_status,
            "authenticationInfo": {"principalEmail": resource.get("user_email", "")},
            "serviceName": SERVICE,
            "methodName": METHOD,
            "resourceName": f"projects/{project}/jobs/{job_id}",
            "metadata": {
                "@type": AUDIT_METADATA,
                "jobChange": {
                    "before": "RUNNING",
                    "after": "DONE",
                    "job": {
                        "jobName": f"projects/{project}/locations/{location}/jobs/{job_id}",
                        "jobConfig": job_config,
                        "jobStatus": job_status,
                        "jobStats": {
                            "createTime": _ms_to_rfc3339(stats.get("creationTime")),
                            "startTime": _ms_to_rfc3339(stats.get("startTime")),
                            "endTime": _ms_to_rfc3339(stats.get("endTime")),
                        },
                    },
                },
            },
        },
        "insertId": uuid.uuid4().hex[:12],
        "resource": {"type": "bigquery_project", "labels": {"project_id": project, "location": location}},
        "timestamp": now,
        "receiveTimestamp": now,
        "severity": "ERROR" if error else "INFO",
        "logName": f"projects/{project}/logs/cloudaudit.googleapis.com%2Fdata_access",
    }


class AuditLog:
    """Publishes each finished job's entry to ``topic`` on the Pub/Sub emulator (PUBSUB_EMULATOR_HOST)."""

    def __init__(self, topic: str | None, pubsub_host: str | None = None) -> None:
        self.topic = topic
        self.host = pubsub_host or os.environ.get("PUBSUB_EMULATOR_HOST")

    def emit(self, resource: dict[str, Any]) -> None:
        if not self.topic or not self.host:
            return
        entry = log_entry(resource)
        project = resource["jobReference"]["projectId"]
        body = {
            "messages": [
                {
                    "data": base64.b64encode(json.dumps(entry).encode()).decode(),
                    "attributes": {"logName": entry["logName"], "methodName": METHOD, "serviceName": SERVICE},
                }
            ]
        }
        url = f"http://{self.host}/v1/projects/{project}/topics/{self.topic}:publish"
        req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
        req.add_header("content-type", "application/json")
        try:
            urllib.request.urlopen(req, timeout=PUBLISH_TIMEOUT_S).close()
            logger.info("audit log entry of job %s published to %s", resource["jobReference"]["jobId"], self.topic)
        except OSError as exc:
            logger.warning("audit log entry of job %s not published: %s", resource["jobReference"]["jobId"], exc)


class Holds:
    """Job-id prefixes whose jobs wait RUNNING until released (tests: a long export)."""

    def __init__(self) -> None:
        self._prefixes: set[str] = set()
        self._changed = threading.Condition()

    def add(self, prefix: str) -> None:
        with self._changed:
            self._prefixes.add(prefix)

    def release(self, prefix: str) -> bool:
        with self._changed:
            found = prefix in self._prefixes
            self._prefixes.discard(prefix)
            self._changed.notify_all()
            return found

    def is_held(self, job_id: str) -> bool:
        with self._changed:
            return any(job_id.startswith(p) for p in self._prefixes)

    def held(self) -> list[str]:
        with self._changed:
            return sorted(self._prefixes)

    def wait(self, job_id: str) -> None:
        with self._changed:
            while any(job_id.startswith(p) for p in self._prefixes):  # is_held, under the same lock
                self._changed.wait(timeout=1.0)
