"""``offsite config docs``: every field of the config models with its type, default and help text.

Generated from the models (``Field(description=...)``), so it cannot drift from what the
loader accepts.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Union

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from shared.config.models import Config
from shared.config.secrets import Secret


def _strip(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _inner(tp: Any) -> tuple[Any, str]:
    """The model (or leaf type) a field holds, and the key suffix: ``.NAME`` for dicts, ``[]`` for lists."""
    tp = _strip(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return _inner(next(a for a in args if a is not type(None)))
    if origin is dict:
        return _strip(args[1]), ".NAME"
    if origin in (tuple, list) and args and _is_model(_strip(args[0])):
        return _strip(args[0]), "[]"
    return tp, ""


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def field_docs(model: type[BaseModel] = Config, prefix: str = "") -> list[str]:
    """``key (required|secret|default: X): help`` for every field, nested models flattened."""
    lines = []
    for name, info in model.model_fields.items():
        inner, suffix = _inner(info.annotation)
        key = f"{prefix}{info.alias or name}{suffix}"
        nested = _is_model(inner)
        if info.is_required():
            note = " (required)"
        elif inner is Secret:
            note = " (secret)"
        elif nested or info.default is None or info.default is PydanticUndefined:
            note = ""
        else:
            note = f" (default: {info.default!r})"
        lines.append(f"{key}{note}: {info.description or ''}")
        if nested:
            lines.extend(field_docs(inner, key + "."))
    return lines
