"""Secrets: a distinct type that never shows its value in repr, str, logs or errors.

A secret is written in config as one of:
- ``env:NAME``: the value of environment variable NAME,
- ``file:PATH``: the contents of a file (trailing newline stripped),
- ``sm://projects/P/secrets/S/versions/V``: a Google Secret Manager version,
- anything else: the literal value (fine for local stacks; use the others in the cloud).
The value is resolved on first ``reveal()`` and cached for the process.

In pydantic models a ``Secret`` field accepts such a string (or a number) and serializes
as :meth:`Secret.describe` (``***`` or where it comes from), so ``repr(config)``,
``config.model_dump()`` and ``offsite config show`` never contain a value. The loader
records each secret's field path (``destinations.sftp.acme.password``) for its errors.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from shared.errors import ConfigError

MASK = "***"
SM_RE = re.compile(r"sm://projects/[^/]+/secrets/[A-Za-z0-9_-]{1,255}/versions/[^/]+")
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

    @classmethod
    def from_config(cls, value: Any) -> Secret:
        """A config value as a Secret; ValueError (naming the type, never the value) otherwise."""
        if isinstance(value, Secret):
            return value
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ValueError(
                f"expected a secret string (literal, env:NAME, file:PATH or sm://...), got {type(value).__name__}"
            )
        text = str(value)
        if text.startswith("sm://") and not SM_RE.fullmatch(text):
            raise ValueError(
                f"{text!r} is not sm://projects/P/secrets/S/versions/V with S of letters, digits, '-' and '_' "
                "(at most 255): Secret Manager refuses other secret ids, and Terraform creates these secrets"
            )
        return cls(text)

    def at(self, field_path: str) -> Secret:
        """The same secret, knowing where it is configured (named in resolution errors)."""
        return self if field_path == self.field_path else Secret(self.source, field_path)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_plain_validator_function(
            cls.from_config,
            json_schema_input_schema=core_schema.str_schema(),
            serialization=core_schema.plain_serializer_function_ser_schema(lambda s: s.describe()),
        )

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
            return os.environ[name].rstrip("\r\n")
        if self.source.startswith("file:"):
            path = Path(self.source[5:]).expanduser()
            try:
                return path.read_text().rstrip("\r\n")
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
    # `echo TOKEN | gcloud secrets versions add --data-file=-` stores the newline too
    return response.payload.data.decode("utf-8").rstrip("\r\n")


def reset_cache() -> None:
    """Forget resolved values (tests, and rotation in long-lived processes)."""
    with _lock:
        _cache.clear()


def name_secrets(node: Any, path: str) -> None:
    """Tell every Secret in the tree its field path, for its resolution errors.

    Runs once, inside validation of a fresh Config (before anyone else sees it), so writing
    the frozen models' storage directly is safe.
    """
    if isinstance(node, BaseModel):
        for name in type(node).model_fields:
            value = getattr(node, name)
            sub = f"{path}.{name}" if path else name
            if isinstance(value, Secret):
                node.__dict__[name] = value.at(sub)
            else:
                name_secrets(value, sub)
    elif isinstance(node, dict):
        for key, value in node.items():
            name_secrets(value, f"{path}.{key}")
    elif isinstance(node, tuple):
        for i, value in enumerate(node):
            name_secrets(value, f"{path}[{i}]")
