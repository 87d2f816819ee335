"""Publishing offsite messages to Pub/Sub topics, through the one retry helper; pulling what a
subscription holds now (operations and tests)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from google.api_core import exceptions as gexc

from shared.errors import PermanentError, TransientError
from shared.gcp import clients
from shared.messages import Message
from shared.retry import retry_call

PUBLISH_TIMEOUT_S = 30.0
_TRANSIENT = (
    gexc.ServiceUnavailable,
    gexc.DeadlineExceeded,
    gexc.InternalServerError,
    gexc.TooManyRequests,
    TimeoutError,
)


def topic_path(topic: str, project: str | None = None) -> str:
    return f"projects/{project or clients.project()}/topics/{topic}"


def pull_waiting(subscription_path: str, max_messages: int) -> list[Any]:
    """Up to ``max_messages`` messages waiting on the subscription now, not acknowledged; none if
    none wait. ``return_immediately`` is deprecated, but a pull without it is a long poll, which
    the Pub/Sub emulator keeps open ~90 s after its client gave up and hands the next message:
    that message then reappears only after the subscription's ack deadline."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        request = {"subscription": subscription_path, "max_messages": max_messages, "return_immediately": True}
        response = clients.subscriber_client().pull(request=request, timeout=30)
    return list(response.received_messages)


def publish(topic: str, message: Message | bytes, *, project: str | None = None, **attributes: str) -> str:
    """Publish and wait for the server's message id. Transient failures are retried, then raised."""
    return publish_all(topic, [message], project=project, **attributes)[0]


def publish_all(
    topic: str, messages: Sequence[Message | bytes], *, project: str | None = None, **attributes: str
) -> list[str]:
    """Publish every message at once (the client batches them) and wait for all their ids.

    Only the messages whose publish failed transiently are sent again; a missing topic is a
    PermanentError. Returns the message ids in the order of ``messages``.
    """
    path = topic_path(topic, project)
    ids: list[str | None] = [None] * len(messages)
    pending = [(i, m if isinstance(m, bytes) else m.to_json()) for i, m in enumerate(messages)]

    def one_round() -> None:
        nonlocal pending
        client = clients.publisher_client()
        futures = [(i, data, client.publish(path, data, **attributes)) for i, data in pending]
        failed, last = [], None
        for i, data, future in futures:
            try:
                ids[i] = future.result(timeout=PUBLISH_TIMEOUT_S)
            except gexc.NotFound:
                raise PermanentError(f"Pub/Sub topic {path!r} does not exist") from None
            except _TRANSIENT as exc:
                failed.append((i, data))
                last = exc
        pending = failed
        if failed:
            raise TransientError(
                f"publishing {len(failed)} of {len(futures)} to {path}: {last.__class__.__name__}: {last}"
            )

    retry_call(one_round, f"publish {topic}", attempts=5)
    return [i for i in ids if i is not None]
