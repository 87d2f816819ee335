"""Turn a YAML/JSON file plus ``OFFSITE__SECTION__KEY`` environment overrides into a :class:`Config`.

The environment is read by pydantic-settings' ``EnvSettingsSource`` (prefix ``OFFSITE__``,
nested delimiter ``__``, case-insensitive, so ``OFFSITE__DESTINATIONS__SFTP__ACME__PORT=2222``
sets ``destinations.sftp.acme.port``); its values are deep-merged over the file's, then the
models validate the result. ``Config`` itself stays a plain model, not a ``BaseSettings``:
constructing one in code never reads the process environment.

Every problem is one line of the ConfigError naming the field path, the value and what was
expected (``datasets[2].schedule: '61 * * * *' is not a valid cron expression``).
"""

from __future__ import annotations

import json
import os
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_settings import EnvSettingsSource, SettingsError
from pydantic_settings.sources.utils import parse_env_vars

from shared.config.destinations import SftpPartner
from shared.config.models import Config
from shared.errors import ConfigError
from shared.validation import describe

ENV_PREFIX = "OFFSITE__"
DEFAULT_PATH = "offsite.yaml"


def config_path() -> Path:
    return Path(os.environ.get("OFFSITE_CONFIG", DEFAULT_PATH))


def load_config(path: str | Path | None = None, environ: typing.Mapping[str, str] | None = None) -> Config:
    """Read, override from env, validate. Raises ConfigError (one line per problem)."""
    path = Path(path) if path is not None else config_path()
    raw = read_file(path)
    raw = deep_merge(raw, env_overrides(os.environ if environ is None else environ))
    return from_dict(Config, raw)


def from_dict(cls: type[Config], data: Any, path: str = "") -> Config:
    """Validate plain data as ``cls``; ConfigError lists every problem with its field path."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise config_error(exc, cls, path) from None


def partner_from(fields: dict[str, Any], where: str) -> SftpPartner:
    """An SftpPartner built in code (the CLI's connection options); ConfigError names ``where.field``."""
    try:
        return SftpPartner.model_validate(fields)
    except ValidationError as exc:
        raise config_error(exc, SftpPartner, where) from None


def config_error(exc: ValidationError, model: type[BaseModel] = Config, root: str = "") -> ConfigError:
    return ConfigError("\n".join(describe(exc, root=root, model=model, unknown="key")))


def read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(
            f"config file {str(path)!r} not found; set OFFSITE_CONFIG or create offsite.yaml (see offsite.example.yaml)"
        ) from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"config file {str(path)!r} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {_syntax(exc)}"
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r}: top level must be a mapping, got {type(data).__name__}")
    return data


def _syntax(exc: Exception) -> str:
    """The problem and where it is, without PyYAML's quote of the line: the line may hold a secret."""
    if not isinstance(exc, yaml.MarkedYAMLError):
        return str(exc)  # JSON's message and other YAML errors name a position, not the text

    def at(mark: Any) -> str:
        return f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""

    context = f"{exc.context}{at(exc.context_mark)}: " if exc.context else ""
    return f"{context}{exc.problem}{at(exc.problem_mark)}"


class _EnvSource(EnvSettingsSource):
    """pydantic-settings' env source over a given mapping (tests pass one) instead of os.environ."""

    def __init__(self, environ: typing.Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(
            Config,  # type: ignore[arg-type]  # only its fields are read
            case_sensitive=False,
            env_prefix=ENV_PREFIX,
            env_nested_delimiter="__",
            env_parse_none_str="null",
        )

    def _load_env_vars(self) -> typing.Mapping[str, str | None]:
        return parse_env_vars(self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


def env_overrides(environ: typing.Mapping[str, str]) -> dict[str, Any]:
    """``OFFSITE__VERIFY__DEADLINE_MINUTES=30`` → ``{"verify": {"deadline_minutes": "30"}}``.

    Values stay strings (the models convert ``"30"`` and ``"true"``); nested models and dicts
    may be given whole as JSON; list fields also take ``a,b`` or ``[a, b]``.
    """
    if not any(key.upper().startswith(ENV_PREFIX) for key in environ):
        return {}
    _check_top_level_names(environ)
    try:
        return _EnvSource(environ)()
    except SettingsError as exc:  # a whole section or list that is not JSON
        raise ConfigError(f"{ENV_PREFIX}* override: {exc}; expected JSON for a section or list") from None


def _check_top_level_names(environ: typing.Mapping[str, str]) -> None:
    """A misspelt section (``OFFSITE__EXPIRATION_DAY``) is an error, as a misspelt nested key is:
    pydantic-settings reads only the variables of known fields and would pass it by in silence."""
    known = sorted(Config.model_fields)
    for key in environ:
        if not key.upper().startswith(ENV_PREFIX):
            continue
        section = key[len(ENV_PREFIX) :].split("__", 1)[0].lower()
        if section not in Config.model_fields:
            raise ConfigError(
                f"{key}: {section!r} is not a config field; expected {ENV_PREFIX}<FIELD>[__<KEY>...] with FIELD one of "
                f"{', '.join(known)}"
            )


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; anything else in ``overlay`` replaces."""
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def to_dict(config: BaseModel) -> Any:
    """Plain data for display; secrets shown by where they come from, never by value."""
    return config.model_dump(mode="json")
