"""Publishing offsite messages to Pub/Sub topics, through the one retry helper."""

from __future__ import annotations

from collections.abc import Sequence

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
