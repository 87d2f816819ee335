"""Pydantic's ValidationError in offsite's wording: one line per problem, ``path: value expected``.

Config (``datasets[2].schedule: '61 * * * *' is not a valid cron expression``) and messages
(``export request.run_id: '../x' does not match ^…$``) both report errors this way. Validators
raise :class:`Problem` (a ValueError) with a message that names the value and what was
expected; ``at`` extends the error's location for checks that span fields (a model validator
of ``Config`` reporting ``datasets[0].destinations[1]``).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Union

from pydantic import BaseModel, ValidationError

Loc = tuple[str | int, ...]


class Problem(ValueError):
    """One or more problems found by a validator; each is (relative location, message)."""

    def __init__(self, message: str = "", at: Iterable[str | int] = (), *, more: list[tuple[Loc, str]] | None = None):
        self.problems: list[tuple[Loc, str]] = ([(tuple(at), message)] if message else []) + list(more or [])
        super().__init__("; ".join(m for _, m in self.problems))


class Problems:
    """Collects a validator's problems; ``raise_any()`` raises them together (one line each)."""

    def __init__(self) -> None:
        self.items: list[tuple[Loc, str]] = []

    def add(self, at: Iterable[str | int], message: str) -> None:
        self.items.append((tuple(at), message))

    def raise_any(self) -> None:
        if self.items:
            raise Problem(more=self.items)


def require_for_method(model: Any, needs: dict[str, tuple[str, ...]]) -> None:
    """Each field ``needs[model.method]`` names must be set: one problem per missing field,
    "required when method is 'X'" (auth sections whose method decides what they need)."""
    problems = Problems()
    for name in needs[model.method]:
        if getattr(model, name) is None:
            problems.add((name,), f"required when method is {model.method!r}")
    problems.raise_any()


def show(value: Any, limit: int = 80) -> str:
    """A value as errors show it: repr, long strings cut to ``limit`` characters first. A mapping
    or a list holding mappings or lists is shown by its shape (keys, lengths), never its values:
    a partner written as a list instead of a mapping holds its password, and errors reach logs
    and published reports."""
    if isinstance(value, str):
        return repr(value[:limit])
    if isinstance(value, Mapping) or (
        isinstance(value, list | tuple) and any(isinstance(item, Mapping | list | tuple) for item in value)
    ):
        return _shape(value)
    text = repr(value)
    return text if len(text) <= 2 * limit else text[: 2 * limit] + "…"


# Config fields holding secrets (and the ``auth`` sections around them): an error there names the
# field and the type it got, never the value (tests/unit/test_validation_secrets.py checks that
# every Secret field of the config models is listed).
SECRET_FIELDS = frozenset(
    {
        "auth",
        "jwt_config",
        "client_secret",
        "developer_token",
        "password",
        "private_key",
        "private_key_passphrase",
        "known_hosts",
        "service_account_key",
        "refresh_token",
        "hash_key",
        "slack_webhook_url",
    }
)


class _Hidden:
    """A value under a secret field, as errors show it."""

    def __init__(self, value: Any) -> None:
        self.kind = _shape(value) if isinstance(value, Mapping | list | tuple) else f"a {type(value).__name__}"

    def __repr__(self) -> str:
        return f"{self.kind} (not shown: a secret's field)"


def _shape(value: Any) -> str:
    if isinstance(value, Mapping):
        keys = ", ".join(str(key) for key in list(value)[:8]) + (", …" if len(value) > 8 else "")
        return f"a mapping with keys {keys}" if value else "an empty mapping"
    if isinstance(value, list | tuple):
        items = "; ".join(_shape(item) for item in value[:3]) + ("; …" if len(value) > 3 else "")
        return f"a list of {len(value)} ({items})" if value else "an empty list"
    return type(value).__name__


def format_loc(loc: Loc, root: str) -> str:
    """``('datasets', 2, 'schedule')`` → ``datasets[2].schedule``; ``()`` → ``root``."""
    out = root
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            continue
        else:
            out = f"{out}.{part}" if out else str(part)
    return out or "config"


def _unwrap(tp: Any) -> Any:
    """The model class (if any) inside Optional / Annotated / tuple[X, ...] / dict[str, X]."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        else:
            return tp


def model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model class found at ``loc`` under ``root`` (for listing a model's known keys)."""
    tp: Any = root
    for part in loc:
        tp = _unwrap(tp)
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if isinstance(part, int) and origin in (tuple, list):
            tp = args[0]
        elif origin is dict:
            tp = args[1]
        elif isinstance(tp, type) and issubclass(tp, BaseModel) and part in tp.model_fields:
            tp = tp.model_fields[str(part)].annotation
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _keys(model: type[BaseModel]) -> list[str]:
    """The keys a model accepts: each field's alias where it has one (``from``, not ``from_``)."""
    return [field.alias or name for name, field in model.model_fields.items()]


_INTEGER = {"int_type", "int_parsing", "int_from_float", "int_parsing_size"}
_NUMBER = {"float_type", "float_parsing"}
_BOOL = {"bool_type", "bool_parsing"}
_MAPPING = {"dict_type", "model_type", "model_attributes_type", "dataclass_type"}
_LIST = {"tuple_type", "list_type", "iterable_type", "set_type", "frozen_set_type"}


def describe(
    exc: ValidationError, *, root: str = "", model: type[BaseModel] | None = None, unknown: str = "key"
) -> list[str]:
    """One line per problem: ``path: <value> <what was expected>``.

    ``root`` prefixes every path (``export request``); ``model`` lets an unknown key list the
    known ones; ``unknown`` is the noun for those (``key`` in config, ``field`` in messages).
    """
    lines: list[str] = []
    for err in exc.errors():
        loc: Loc = tuple(err["loc"])
        kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
        if next((part for part in reversed(loc) if isinstance(part, str)), None) in SECRET_FIELDS:
            value = _Hidden(value)
        error = ctx.get("error")
        if isinstance(error, Problem):
            lines.extend(f"{format_loc(loc + at, root)}: {message}" for at, message in error.problems)
            continue
        if kind == "extra_forbidden":
            owner = model_at(model, loc[:-1]) if model is not None else None
            known = (
                f" ({'known' if unknown == 'key' else 'allowed'}: {', '.join(sorted(_keys(owner)))})" if owner else ""
            )
            lines.append(f"{format_loc(loc[:-1], root)}: unknown {unknown} {loc[-1]!r}{known}")
            continue
        if kind == "missing":
            text = "required field is missing"
        elif kind in ("value_error", "assertion_error"):
            text = str(error) if error is not None else err["msg"]
        elif kind in _INTEGER:
            text = f"expected an integer, got {show(value)}"
        elif kind in _NUMBER:
            text = f"expected a number, got {show(value)}"
        elif kind in _BOOL:
            text = f"expected true or false, got {show(value)}"
        elif kind == "string_type":
            text = f"expected a string, got {show(value)}"
        elif kind in _MAPPING:
            text = f"expected {'a mapping' if unknown == 'key' else 'an object'}, got {show(value)}"
        elif kind in _LIST:
            text = f"expected a list, got {show(value)}"
        elif kind in ("literal_error", "enum"):
            expected = str(ctx.get("expected", ""))
            text = f"{show(value)} is not {expected if expected.count(',') == 0 else 'one of ' + expected}"
        elif kind == "string_pattern_mismatch":
            text = f"{show(value)} does not match {ctx.get('pattern')}"
        elif kind in ("greater_than_equal", "greater_than"):
            text = f"{show(value)} must be at least {ctx.get('ge', ctx.get('gt'))}"
        elif kind in ("less_than_equal", "less_than"):
            text = f"{show(value)} must be at most {ctx.get('le', ctx.get('lt'))}"
        else:
            text = f"{show(value)}: {err['msg'][:1].lower()}{err['msg'][1:]}"
        lines.append(f"{format_loc(loc, root)}: {text}")
    return lines
