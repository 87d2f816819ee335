"""What a request that got no answer means (requests raised before a status came back).

Box and Drive send bearer tokens and talk to configured URLs; requests refuses to send a header
value or URL it finds malformed, and its message quotes the value: the token itself."""

from __future__ import annotations

from urllib.parse import urlsplit

import requests

from shared.errors import ConfigError, OffsiteError, TransientError

# Requests that could never be sent as built: retrying sends the same bytes again.
NEVER_SENDABLE = (
    requests.exceptions.InvalidHeader,
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.URLRequired,
)


def request_failed(what: str, exc: requests.RequestException, service: str, settings: str) -> OffsiteError:
    """A permanent ConfigError (naming ``settings``, the config section of the credentials and
    URL) for a request that can never be sent, without the exception's text; a TransientError
    for anything else (connection, timeout, a body cut short), naming the host."""
    kind = exc.__class__.__name__
    if isinstance(exc, NEVER_SENDABLE):
        return ConfigError(
            f"{what}: the request to {service} cannot be sent ({kind}): check {settings} — a token, "
            "secret or URL there holds a line break or another character HTTP does not allow"
        )
    url = exc.request.url if exc.request is not None and exc.request.url else ""
    host = urlsplit(url).netloc or "unknown host"
    return TransientError(f"{what}: {kind} talking to {service} ({host})")
