"""The two kinds of failure every stage distinguishes.

The pipeline decides what to do by type, never by parsing messages:
- ``TransientError``: the stage raises, Pub/Sub or Eventarc redelivers with backoff.
- ``PermanentError``: the stage logs, acknowledges, and reports a ``rejected``/``failed``
  result; retrying would only fail the same way.
"""

from __future__ import annotations


class OffsiteError(Exception):
    """Base of every error offsite raises on purpose."""


class TransientError(OffsiteError):
    """A failure that may succeed on retry (network, 429, 5xx, lock, not-yet-there).

    ``retry_after`` (seconds), when a server said how long to wait, is honoured by
    :mod:`shared.retry`.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(OffsiteError):
    """A failure retrying cannot fix (bad input, auth, configuration).

    ``status`` is what the result reports: ``rejected`` for bad input, ``failed`` for
    everything else that is permanent.
    """

    def __init__(self, message: str, *, status: str = "failed") -> None:
        super().__init__(message)
        self.status = status


class RejectedInput(PermanentError):
    """Bad input: a message or request that can never be processed as given."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status="rejected")


class ConfigError(PermanentError):
    """The configuration is invalid; the message names the field path and the value."""
