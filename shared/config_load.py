"""Turn a YAML/JSON file plus environment overrides into a validated :class:`Config`.

Strict: unknown keys, missing required fields and wrong types are errors naming the field
path (``datasets[2].schedule``) and the bad value.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from shared.config import Config
from shared.config_validate import validate
from shared.errors import ConfigError
from shared.secrets import Secret

ENV_PREFIX = "OFFSITE__"
DEFAULT_PATH = "offsite.yaml"


def config_path() -> Path:
    return Path(os.environ.get("OFFSITE_CONFIG", DEFAULT_PATH))


def load_config(path: str | Path | None = None, environ: typing.Mapping[str, str] | None = None) -> Config:
    """Read, override from env, convert and validate. Raises ConfigError."""
    path = Path(path) if path is not None else config_path()
    raw = read_file(path)
    apply_env_overrides(raw, os.environ if environ is None else environ)
    config = from_dict(Config, raw, "")
    validate(config)
    return config


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
            f"config file {str(path)!r} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}"
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r}: top level must be a mapping, got {type(data).__name__}")
    return data


def apply_env_overrides(raw: dict[str, Any], environ: typing.Mapping[str, str]) -> None:
    """``OFFSITE__VERIFY__DEADLINE_MINUTES=30`` sets raw["verify"]["deadline_minutes"] = 30.

    Values are parsed as YAML scalars/flow values, so ``[a, b]`` and ``true`` work.
    """
    for key in sorted(environ):
        if not key.startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in key[len(ENV_PREFIX) :].split("__") if p]
        if not path:
            continue
        node = raw
        for part in path[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"{key}: cannot set {'.'.join(path)}; {part!r} is not a mapping")
            node = nxt
        try:
            node[path[-1]] = yaml.safe_load(environ[key])
        except yaml.YAMLError:
            node[path[-1]] = environ[key]


def _where(path: str) -> str:
    return path or "config"


def from_dict(cls: type, data: Any, path: str) -> Any:
    """Build dataclass ``cls`` from ``data``; errors name ``path``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{_where(path)}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{_where(path)}: unknown key {unknown[0]!r} (known: {', '.join(fields)})")
    kwargs = {}
    for name, fld in fields.items():
        sub = f"{path}.{name}" if path else name
        if name in data:
            kwargs[name] = convert(hints[name], data[name], sub)
        elif fld.default is dataclasses.MISSING and fld.default_factory is dataclasses.MISSING:  # pragma: no cover
            raise ConfigError(f"{sub}: required")
        elif fld.default is None and not _optional(hints[name]):
            raise ConfigError(f"{sub}: required field is missing")
    return cls(**kwargs)


def _optional(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType) and type(None) in get_args(tp)


def convert(tp: Any, value: Any, path: str) -> Any:
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return convert(inner[0], value, path)
    if value is None:
        raise ConfigError(f"{path}: must not be null")
    if tp is Secret:
        if not isinstance(value, str | int):
            raise ConfigError(
                f"{path}: expected a secret string (literal, env:NAME, file:PATH or sm://...), got {type(value).__name__}"
            )
        return Secret(str(value), path)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{path}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        return tuple(convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping of name to settings, got {value!r}")
        return {str(k): convert(args[1], v, f"{path}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{path}: unsupported type {tp!r}")  # pragma: no cover


def to_dict(config: Any) -> Any:
    """Plain data for display; secrets shown by where they come from, never by value."""
    if isinstance(config, Secret):
        return config.describe()
    if dataclasses.is_dataclass(config):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, dict):
        return {k: to_dict(v) for k, v in config.items()}
    if isinstance(config, tuple | list):
        return [to_dict(v) for v in config]
    return config
