"""The REST calls the dispatcher makes on the Pub/Sub emulator (same JSON API as the cloud)."""

from __future__ import annotations

import http.client
import json
import threading
from typing import Any

CALL_TIMEOUT_S = 30.0


class EmulatorError(Exception):
    """A call on the emulator failed (unreachable, or a non-2xx answer)."""


class Emulator:
    """Pull, acknowledge, modify ack deadlines and publish on one project of the emulator.

    Pulls go over gRPC, everything else over REST. The dispatcher polls ~34 subscriptions and an
    idle stack is mostly those polls: a REST pull cost the Java emulator ~7-9 ms of CPU on a kept
    connection (~12 ms on a new one), a gRPC pull ~3 ms (and ~1.5 ms in the dispatcher). For
    REST each thread keeps one connection open (HTTP keep-alive); gRPC shares one channel.
    """

    def __init__(self, host: str, project: str) -> None:
        self.host = host
        self.prefix = f"/v1/projects/{project}"
        self.base = f"http://{host}{self.prefix}"
        self.project = project
        self._local = threading.local()
        self._grpc_lock = threading.Lock()
        self._grpc: tuple[Any, Any] | None = None  # (Pull method, PullRequest class), made on first pull

    def _pull_method(self) -> tuple[Any, Any]:
        """The gRPC Pull of this emulator; imported on first use, since `offsite dev` commands
        import this module and google.pubsub_v1 takes ~0.35 s to import."""
        with self._grpc_lock:
            if self._grpc is None:
                import grpc
                from google.pubsub_v1.types import PullRequest, PullResponse

                request, response = PullRequest.pb(), PullResponse.pb()
                method = grpc.insecure_channel(self.host).unary_unary(
                    "/google.pubsub.v1.Subscriber/Pull",
                    request_serializer=request.SerializeToString,
                    response_deserializer=response.FromString,
                )
                self._grpc = (method, request)
            return self._grpc

    def call(self, path: str, body: dict[str, Any], timeout_s: float = CALL_TIMEOUT_S) -> dict[str, Any]:
        """POST ``body`` to ``<base>/<path>``; the decoded answer."""
        payload = json.dumps(body).encode()
        headers = {"content-type": "application/json"}
        while True:
            conn, reused = self._connection(timeout_s)
            try:
                conn.request("POST", f"{self.prefix}/{path}", body=payload, headers=headers)
                resp = conn.getresponse()
                status, text = resp.status, resp.read()
            except (http.client.HTTPException, OSError) as exc:
                self._drop()
                # a kept connection the emulator has closed meanwhile fails before any answer:
                # send once more on a new one (a fresh connection's failure is the call's)
                if reused and isinstance(exc, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)):
                    continue
                raise EmulatorError(f"{path}: {exc!r}") from None
            if not 200 <= status < 300:
                raise EmulatorError(f"{path}: {status} {text[:200]!r}")
            return json.loads(text) if text.strip() else {}

    def _connection(self, timeout_s: float) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection (made now if it has none) and whether it was used before."""
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.timeout = timeout_s
            if conn.sock is not None:
                conn.sock.settimeout(timeout_s)
            return conn, True
        conn = http.client.HTTPConnection(self.host, timeout=timeout_s)
        self._local.conn = conn
        return conn, False

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None

    def pull(self, subscription: str, max_messages: int) -> list[dict[str, Any]]:
        """Up to ``max_messages`` received messages, at once (possibly none).

        Each as the REST API gives it (``ackId``, ``message`` with ``data`` in base64,
        ``deliveryAttempt``). Not a long poll (``returnImmediately=false``), although an idle
        one costs the emulator less: it keeps an open pull for about 90 s even after its client
        is gone, and gives it messages no one will ever receive; they would wait out the whole
        ack deadline after a restart of the dispatcher.
        """
        import grpc
        from google.protobuf.json_format import MessageToDict

        pull, request_type = self._pull_method()
        name = f"projects/{self.project}/subscriptions/{subscription}"
        request = request_type(subscription=name, max_messages=max_messages, return_immediately=True)
        try:
            got = pull(request, timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as exc:
            raise EmulatorError(f"subscriptions/{subscription}:pull: {exc.code().name} {exc.details()}") from None
        return [MessageToDict(item) for item in got.received_messages]

    def ack(self, subscription: str, ack_ids: list[str]) -> None:
        self.call(f"subscriptions/{subscription}:acknowledge", {"ackIds": ack_ids})

    def modify_ack_deadline(self, subscription: str, ack_ids: list[str], seconds: int) -> None:
        """Seconds until redelivery (0: at once, a nack); also extends a lease."""
        body = {"ackIds": ack_ids, "ackDeadlineSeconds": int(seconds)}
        self.call(f"subscriptions/{subscription}:modifyAckDeadline", body)

    def publish(self, topic: str, message: dict[str, Any]) -> str:
        """Publish one message (``data`` base64, ``attributes``); its new message id."""
        got = self.call(f"topics/{topic}:publish", {"messages": [message]})
        return str(got["messageIds"][0])
