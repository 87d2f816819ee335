"""Publishing offsite messages to Pub/Sub topics, through the one retry helper."""

from __future__ import annotations

from google.api_core import exceptions as gexc

from shared.errors import PermanentError, TransientError
from shared.gcp import clients
from shared.messages import Message
from shared.retry import retry_call

PUBLISH_TIMEOUT_S = 30.0


def topic_path(topic: str, project: str | None = None) -> str:
    return f"projects/{project or clients.project()}/topics/{topic}"


def publish(topic: str, message: Message | bytes, *, project: str | None = None, **attributes: str) -> str:
    """Publish and wait for the server's message id. Transient failures are retried, then raised."""
    data = message if isinstance(message, bytes) else message.to_json()
    path = topic_path(topic, project)

    def once() -> str:
        try:
            return clients.publisher_client().publish(path, data, **attributes).result(timeout=PUBLISH_TIMEOUT_S)
        except gexc.NotFound:
            raise PermanentError(f"Pub/Sub topic {path!r} does not exist") from None
        except (
            gexc.ServiceUnavailable,
            gexc.DeadlineExceeded,
            gexc.InternalServerError,
            gexc.TooManyRequests,
            TimeoutError,
        ) as exc:
            raise TransientError(f"publishing to {path}: {exc.__class__.__name__}: {exc}") from exc

    return retry_call(once, f"publish {topic}", attempts=5)
