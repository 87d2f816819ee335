"""Terraform values for hcl_eval: unknowns, sets, conversions, operators, built-in functions."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class EvalError(Exception):
    """What Terraform would report as an error while evaluating (caught by try/can)."""


@dataclass(frozen=True)
class Ref:
    """A value known only after apply: resource/data attribute path."""

    parts: tuple[Any, ...]

    def __str__(self) -> str:
        """Terraform's spelling: google_pubsub_topic.dead_letter["x-dlq"].id."""
        out = ""
        for i, part in enumerate(self.parts):
            out += f"[{json.dumps(part.value)}]" if isinstance(part, Key) else ("." if i else "") + str(part)
        return out


@dataclass(frozen=True)
class Key:
    value: Any


@dataclass(frozen=True)
class Template:
    """A string with unknown parts."""

    parts: tuple[Any, ...]

    def __str__(self) -> str:
        return "".join(p if isinstance(p, str) else "${" + str(p) + "}" for p in self.parts)


class TSet(tuple):
    """A Terraform set (ordered like Terraform orders a set of strings)."""


UNKNOWN = (Ref, Template)


def is_unknown(value: Any) -> bool:
    return isinstance(value, UNKNOWN)


def to_string(value: Any) -> str | Template:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if value is None:
        raise EvalError("cannot use a null value in a string template")
    if is_unknown(value):
        return Template((value,))
    raise EvalError(f"cannot convert {type(value).__name__} to string")


def iterate(collection: Any) -> list[tuple[Any, Any]]:
    if isinstance(collection, dict):
        return [(k, collection[k]) for k in sorted(collection)]
    if isinstance(collection, TSet):
        return [(v, v) for v in collection]
    if isinstance(collection, (list, tuple)):
        return list(enumerate(collection))
    if collection is None:
        raise EvalError("cannot iterate over a null value")
    raise EvalError(f"cannot iterate over {type(collection).__name__}")


def _toset(values: Any) -> TSet:
    items = [v for _, v in iterate(values)]
    if any(isinstance(v, (dict, list)) for v in items):
        raise NotImplementedError("sets of collections")
    return TSet(sorted(set(items), key=lambda v: (str(type(v)), v)))


def number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, str):
            try:
                return float(value) if "." in value else int(value)
            except ValueError:
                pass
        raise EvalError(f"a number is required, got {value!r}")
    return value


def _coalesce(*values: Any) -> Any:
    for value in values:
        if value is not None and value != "":
            return value
    raise EvalError("coalesce: no non-null, non-empty argument")


def _regex(pattern: str, text: Any) -> Any:
    if not isinstance(text, str):
        raise EvalError("regex: a string is required")
    match = re.search(pattern, text)
    if not match:
        raise EvalError(f"regex: pattern {pattern!r} did not match {text!r}")
    if match.groupdict():
        return match.groupdict()
    return list(match.groups()) if match.groups() else match.group(0)


def _regexall(pattern: str, text: Any) -> list[Any]:
    if not isinstance(text, str):
        raise EvalError("regexall: a string is required")
    out: list[Any] = []
    for match in re.finditer(pattern, text):
        if match.groupdict():
            out.append(match.groupdict())
        elif match.groups():
            out.append(list(match.groups()))  # a group that took no part is null, as in Terraform
        else:
            out.append(match.group(0))
    return out


def _distinct(values: Any) -> list[Any]:
    out: list[Any] = []
    for _, v in iterate(values):
        if v not in out:
            out.append(v)
    return out


def _slice(values: Any, start: Any, end: Any) -> list[Any]:
    items = [v for _, v in iterate(values)]
    start, end = int(number(start)), int(number(end))
    if not 0 <= start <= end <= len(items):
        raise EvalError(f"slice: bad range {start}..{end} of {len(items)}")
    return items[start:end]


def index_value(collection: Any, key: Any) -> Any:
    if isinstance(collection, dict):
        if key not in collection:
            raise EvalError(f"no key {key!r} in map with keys {sorted(collection)}")
        return collection[key]
    if isinstance(collection, (list, tuple)) and not isinstance(collection, TSet):
        key = number(key)
        if not 0 <= key < len(collection):
            raise EvalError(f"index {key} out of range")
        return collection[int(key)]
    raise EvalError(f"cannot index {type(collection).__name__} with {key!r}")


def binary(operator: str, left: Any, right: Any) -> Any:
    if operator == "==":
        return left == right and type(left) is type(right) or (_is_num(left) and _is_num(right) and left == right)
    if operator == "!=":
        return not binary("==", left, right)
    if is_unknown(left) or is_unknown(right):
        return Ref((f"({operator})",))
    if operator in ("&&", "||"):
        if not isinstance(left, bool) or not isinstance(right, bool):
            raise EvalError(f"{operator} needs bools")
        return (left and right) if operator == "&&" else (left or right)
    a, b = number(left), number(right)
    ops = {
        "+": lambda: a + b,
        "-": lambda: a - b,
        "*": lambda: a * b,
        "/": lambda: a / b,
        "%": lambda: a % b,
        "<": lambda: a < b,
        ">": lambda: a > b,
        "<=": lambda: a <= b,
        ">=": lambda: a >= b,
    }
    return ops[operator]()


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def builtin_functions(read_path: Callable[[str], Path]) -> dict[str, Callable[..., Any]]:
    """Terraform's built-in functions used by infra/ (file paths resolved by read_path)."""

    def merge(*maps: Any) -> dict:
        out: dict = {}
        for m in maps:
            if m is None:
                continue
            if not isinstance(m, dict):
                raise EvalError("merge: arguments must be maps")
            out.update(m)
        return out

    def flatten(values: Any) -> list:
        out: list = []
        for _, v in iterate(values):
            out.extend(flatten(v) if isinstance(v, (list, tuple)) else [v])
        return out

    return {
        "yamldecode": lambda s: yaml.safe_load(s),
        "jsonencode": lambda v: json.dumps(v, separators=(",", ":"), sort_keys=True),
        "jsondecode": json.loads,
        "base64encode": lambda s: base64.b64encode(s.encode()).decode(),
        "file": lambda p: read_path(p).read_text(),
        "filemd5": lambda p: hashlib.md5(read_path(p).read_bytes()).hexdigest(),
        "fileexists": lambda p: read_path(p).is_file(),
        "startswith": lambda s, p: s.startswith(p),
        "trimsuffix": lambda s, suffix: s.removesuffix(suffix),
        "coalesce": _coalesce,
        "regex": _regex,
        "regexall": _regexall,
        "distinct": _distinct,
        "slice": _slice,
        "tostring": lambda v: to_string(v) if v is not None else None,
        "compact": lambda values: [v for _, v in iterate(values) if v not in (None, "")],
        "concat": lambda *lists: [v for lst in lists for _, v in iterate(lst)],
        "flatten": flatten,
        "toset": _toset,
        "tolist": lambda values: [v for _, v in iterate(values)],
        "merge": merge,
        "values": lambda m: [m[k] for k in sorted(m)],
        "keys": lambda m: sorted(m),
        "lookup": lambda m, k, *default: m[k] if k in m else (default[0] if default else index_value(m, k)),
        "length": lambda v: len(v),
        "split": lambda sep, s: s.split(sep),
        "join": lambda sep, values: sep.join(to_string(v) for _, v in iterate(values)),
        "element": lambda values, i: values[int(i) % len(values)],
        "replace": lambda s, old, new: s.replace(old, new),
        "substr": lambda s, offset, length: (
            s[int(offset) :] if int(length) == -1 else s[int(offset) : int(offset) + int(length)]
        ),
        "sha1": lambda s: hashlib.sha1(s.encode()).hexdigest(),
        "lower": str.lower,
        "upper": str.upper,
        "min": lambda *v: min(number(x) for x in v),
        "max": lambda *v: max(number(x) for x in v),
        "floor": lambda v: math.floor(number(v)),
        "sort": lambda values: sorted(v for _, v in iterate(values)),
        "contains": lambda values, v: v in [x for _, x in iterate(values)],
    }
