"""Local Eventarc: GCS notifications and BigQuery audit-log entries (via Pub/Sub push) →
the CloudEvents Eventarc delivers, at the functions.

fake-gcs-server publishes object notifications to a Pub/Sub topic; one push subscription per
GCS-triggered function delivers them here at ``/to/<function>``. A Pub/Sub push would reach
a function as a ``messagePublished`` event, but in the cloud Eventarc delivers
``google.cloud.storage.object.v1.finalized``; this relay builds that event (same source,
subject, id and data shape) and POSTs it to the function. Which buckets' events go where is
read from ``relay-buckets.json`` (:func:`write_buckets`), as Eventarc's bucket filters say in the
cloud: OBJECT_FINALIZE of the exports bucket reaches every GCS-triggered function; OBJECT_FINALIZE
and OBJECT_DELETE (``google.cloud.storage.object.v1.deleted``) of a mirrored bucket (``buckets[]``,
docs/mirror.md) reach the delivery functions only (infra/mirror.tf's triggers). Everything else
(the state bucket, metadata updates) is acknowledged and dropped. Without the file every
OBJECT_FINALIZE is forwarded.
The function's HTTP status is returned to Pub/Sub: a 500 makes it redeliver with backoff and
finally dead-letter, like Eventarc's retries. A function that is not listening (restarting) gets
the event when it is back, or 429 after 60 s, as Cloud Run queues it (devstack.push.deliver).

BigQuery job completions arrive at ``/auditlog/to/<function>``: the local BigQuery front
publishes each finished job's Cloud Audit Logs entry (devstack/bqfront/audit.py) and this relay
wraps it as ``google.cloud.audit.log.v1.written`` (source ``//cloudaudit.googleapis.com/
projects/P/logs/data_access``, subject ``bigquery.googleapis.com/projects/P/jobs/ID``, the
``servicename``/``methodname``/``resourcename`` attributes, the LogEntry as data), as an
Eventarc Cloud Audit Logs trigger does.

Targets (function → URL) are read from a JSON file on every request, so a test can point a
function's events elsewhere while the stack runs (:func:`write_targets`).

    python -m devstack.relay --host 127.0.0.1 --port N --targets ROOT/relay-targets.json
"""

from __future__ import annotations

import base64
import json
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from devstack.ports import server_arguments
from devstack.push import deliver
from shared import topology
from shared.topology import AUDIT_LOG_WRITTEN, GCS_DELETED, GCS_FINALIZED

FORWARDED_EVENT = "OBJECT_FINALIZE"
MIRROR_EVENTS = {"OBJECT_FINALIZE": GCS_FINALIZED, "OBJECT_DELETE": GCS_DELETED}
BUCKETS_FILE = "relay-buckets.json"
_LOG_LOCK = threading.Lock()
FORWARD_TIMEOUT_S = 600.0  # the longest function timeout; Pub/Sub's ack deadline bounds it too


def write_targets(path: Path, targets: dict[str, str]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(targets, indent=2, sort_keys=True))
    tmp.replace(path)


def read_targets(path: Path) -> dict[str, str]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def write_buckets(path: Path, exports: str, mirrored: list[str]) -> None:
    """Which buckets' events the relay forwards: the exports bucket and the mirrored ones."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"exports": exports, "mirrored": sorted(mirrored)}, indent=2))
    tmp.replace(path)


def event_type_for(buckets: dict[str, Any] | None, function: str, bucket: str, notification: str) -> str | None:
    """The CloudEvent type ``function`` gets for this notification of ``bucket``; None: not for it."""
    if not buckets:
        return GCS_FINALIZED if notification == FORWARDED_EVENT else None
    if bucket == buckets.get("exports"):
        return GCS_FINALIZED if notification == FORWARDED_EVENT else None
    if bucket in (buckets.get("mirrored") or []) and _delivers(function):
        return MIRROR_EVENTS.get(notification)
    return None


def _delivers(function: str) -> bool:
    try:
        return bool(topology.function(function).serves)
    except KeyError:
        return False


def storage_cloudevent(message: dict[str, Any], event_type: str = GCS_FINALIZED) -> dict[str, Any]:
    """A Pub/Sub message from a GCS notification → the Eventarc storage CloudEvent (structured)."""
    attrs = message.get("attributes") or {}
    obj = json.loads(base64.b64decode(message.get("data") or ""))
    if not isinstance(obj, dict) or not obj.get("bucket") or not obj.get("name"):
        raise ValueError("notification data is not a GCS object resource")
    obj.setdefault("metageneration", "1")  # fake-gcs-server omits it; GCS always sends it
    obj.setdefault("kind", "storage#object")
    return {
        "specversion": "1.0",
        # Stable across redeliveries of the same notification, as Eventarc's ids are.
        "id": str(message.get("messageId") or message.get("message_id") or ""),
        "source": f"//storage.googleapis.com/projects/_/buckets/{obj['bucket']}",
        "type": event_type,
        "datacontenttype": "application/json",
        "subject": f"objects/{obj['name']}",
        "time": obj.get("updated") or attrs.get("eventTime") or message.get("publishTime"),
        "data": obj,
    }


def audit_cloudevent(message: dict[str, Any]) -> dict[str, Any]:
    """A Pub/Sub message holding a Cloud Audit Logs entry → Eventarc's audit-log CloudEvent (structured)."""
    entry = json.loads(base64.b64decode(message.get("data") or ""))
    payload = entry.get("protoPayload") if isinstance(entry, dict) else None
    if not isinstance(payload, dict) or not payload.get("serviceName") or not payload.get("resourceName"):
        raise ValueError("message data is not a Cloud Audit Logs entry")
    log_name = str(entry.get("logName") or "")
    project = log_name.split("/")[1] if log_name.startswith("projects/") else ""
    log_id = log_name.rsplit("%2F", 1)[-1] if "%2F" in log_name else "data_access"
    return {
        "specversion": "1.0",
        "id": str(message.get("messageId") or message.get("message_id") or entry.get("insertId") or ""),
        "source": f"//cloudaudit.googleapis.com/projects/{project}/logs/{log_id}",
        "type": AUDIT_LOG_WRITTEN,
        "datacontenttype": "application/json; charset=utf-8",
        "subject": f"{payload['serviceName']}/{payload['resourceName']}",
        "time": entry.get("timestamp") or message.get("publishTime"),
        "servicename": payload["serviceName"],
        "methodname": payload.get("methodName", ""),
        "resourcename": payload["resourceName"],
        "data": entry,
    }


def forward(url: str, event: dict[str, Any]) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=json.dumps(event).encode(), method="POST")
    req.add_header("content-type", "application/cloudevents+json")
    try:
        resp, _ = deliver.open_queued(req, FORWARD_TIMEOUT_S)
        with resp:
            return resp.status, resp.read()
    except deliver.NoInstance as exc:
        return 429, str(exc).encode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except TimeoutError:
        return 504, b"function timed out"
    except OSError as exc:
        return 502, f"function unreachable: {exc}".encode()


class RelayServer(ThreadingHTTPServer):
    """The listen backlog holds every push the dispatcher may send at once (the default, 5,
    drops connections when storage-triggered functions get dozens of events together)."""

    request_queue_size = 1024
    daemon_threads = True


class RelayHandler(BaseHTTPRequestHandler):
    targets_file: Path

    def do_GET(self) -> None:
        if self.path == "/health":
            self._reply(200, b"ok")
        elif self.path == "/targets":
            self._reply(200, json.dumps(read_targets(self.targets_file)).encode())
        else:
            self._reply(404, b"not found")

    def do_POST(self) -> None:
        if self.path.startswith("/auditlog/to/"):
            self._audit(self.path[len("/auditlog/to/") :].split("?", 1)[0])
            return
        if not self.path.startswith("/to/"):
            self._reply(404, b"POST /to/<function> or /auditlog/to/<function>")
            return
        function = self.path[len("/to/") :].split("?", 1)[0]
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            message = json.loads(body)["message"]
        except (ValueError, KeyError, TypeError):
            self._log(function, "-", 400, "not a Pub/Sub push body")
            self._reply(400, b"expected a Pub/Sub push body")
            return
        attrs = message.get("attributes") or {}
        name = attrs.get("objectId", "-")
        buckets = read_targets(self.targets_file.with_name(BUCKETS_FILE)) or None
        event_type = event_type_for(buckets, function, attrs.get("bucketId", ""), attrs.get("eventType", ""))
        if event_type is None:
            watched = buckets is None or attrs.get("bucketId") == buckets.get("exports")
            note = "" if watched else f" (bucket {attrs.get('bucketId')} not watched by {function})"
            self._log(function, name, 204, f"ignored {attrs.get('eventType')}{note}")
            self._reply(204, b"")
            return
        target = self._target(function, name)
        if not target:
            return
        try:
            event = storage_cloudevent(message, event_type)
        except ValueError as exc:
            self._log(function, name, 400, str(exc))
            self._reply(400, str(exc).encode())
            return
        self._forward(function, name, target, event)

    def _audit(self, function: str) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            event = audit_cloudevent(json.loads(body)["message"])
        except (ValueError, KeyError, TypeError) as exc:
            self._log(function, "-", 400, f"not an audit-log push: {exc}")
            self._reply(400, b"expected a Pub/Sub push of a Cloud Audit Logs entry")
            return
        target = self._target(function, event["resourcename"])
        if target:
            self._forward(function, event["resourcename"], target, event)

    def _target(self, function: str, name: str) -> str | None:
        """Where ``function`` listens; None (answered 404) when the stack has no target for it."""
        target = read_targets(self.targets_file).get(function)
        if not target:
            self._log(function, name, 404, "no target for this function")
            self._reply(404, f"no target for {function}".encode())
        return target or None

    def _forward(self, function: str, name: str, target: str, event: dict[str, Any]) -> None:
        status, answer = forward(target, event)
        self._log(function, name, status, f"id={event['id']} → {target}")
        self._reply(status, answer[:2000])

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _log(self, function: str, name: str, status: int, note: str) -> None:
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "function": function,
            "object": name,
            "status": status,
            "note": note,
        }
        # One write per line under a lock: the server answers pushes on several threads, and
        # print() writes the text and its newline apart, so two lines could share one.
        with _LOG_LOCK:
            sys.stderr.write(json.dumps(line) + "\n")
            sys.stderr.flush()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(host: str, port: int, targets_file: Path) -> None:
    handler = type("BoundRelayHandler", (RelayHandler,), {"targets_file": targets_file})
    RelayServer((host, port), handler).serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = server_arguments(__doc__)
    parser.add_argument("--targets", type=Path, required=True, help="JSON file: {function: url}")
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.targets)


if __name__ == "__main__":
    main()
