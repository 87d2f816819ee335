"""Secrets: a distinct type that never shows its value in repr, str, logs or errors.

A secret is written in config as one of:
- ``env:NAME``: the value of environment variable NAME,
- ``file:PATH``: the contents of a file (trailing newline stripped),
- ``sm://projects/P/secrets/S/versions/V``: a Google Secret Manager version,
- anything else: the literal value (fine for local stacks; use the others in the cloud).
The value is resolved on first ``reveal()`` and cached for the process.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from shared.errors import ConfigError

MASK = "***"
_cache: dict[str, str] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class Secret:
    source: str = field(repr=False)
    field_path: str = field(default="", repr=False, compare=False)

    def __repr__(self) -> str:
        return f"Secret({self.describe()})"

    __str__ = __repr__

    def describe(self) -> str:
        """Where the value comes from, without the value: safe to log."""
        if self.source.startswith(("env:", "file:", "sm://")):
            return self.source
        return MASK

    def reveal(self) -> str:
        """The secret's value. Raises ConfigError naming the field when it cannot be resolved."""
        with _lock:
            if self.source in _cache:
                return _cache[self.source]
        value = self._resolve()
        with _lock:
            _cache[self.source] = value
        return value

    def _resolve(self) -> str:
        where = self.field_path or "secret"
        if self.source.startswith("env:"):
            name = self.source[4:]
            if name not in os.environ:
                raise ConfigError(
                    f"{where}: environment variable {name!r} is not set (expected the secret's value there)"
                )
            return os.environ[name]
        if self.source.startswith("file:"):
            path = Path(self.source[5:]).expanduser()
            try:
                return path.read_text().rstrip("\n")
            except OSError as exc:
                raise ConfigError(f"{where}: cannot read secret file {str(path)!r}: {exc.strerror}") from None
        if self.source.startswith("sm://"):
            return _secret_manager_value(self.source[5:], where)
        return self.source


def _secret_manager_value(name: str, where: str) -> str:
    parts = name.split("/")
    if len(parts) != 6 or parts[0] != "projects" or parts[2] != "secrets" or parts[4] != "versions":
        raise ConfigError(f"{where}: 'sm://{name}' is not of the form sm://projects/P/secrets/S/versions/V")
    from google.api_core import exceptions as gexc
    from google.cloud import secretmanager

    try:
        response = secretmanager.SecretManagerServiceClient().access_secret_version(name=name)
    except (gexc.NotFound, gexc.PermissionDenied) as exc:
        raise ConfigError(f"{where}: cannot read sm://{name}: {exc.__class__.__name__}") from None
    return response.payload.data.decode("utf-8")


def reset_cache() -> None:
    """Forget resolved values (tests, and rotation in long-lived processes)."""
    with _lock:
        _cache.clear()
