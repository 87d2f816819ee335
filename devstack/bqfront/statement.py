"""Recognise and split ``EXPORT DATA [WITH CONNECTION c] OPTIONS(k=v, ...) AS <query>``.

``parse_export_data(sql)`` returns None for any other statement (the query goes to
bqemulator unchanged), else the options (lower-case keys; string, bool or number values) and
the query text. A malformed option list raises JobFailure(invalidQuery).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from devstack.bqfront.errors import JobFailure

_HEAD = re.compile(
    r"\A\s*(?:--[^\n]*\n\s*)*EXPORT\s+DATA\s+(?:WITH\s+CONNECTION\s+[^\s]+\s+)?OPTIONS\s*\(", re.IGNORECASE
)
_AS = re.compile(r"\s*AS\s+(?P<query>.+)\Z", re.IGNORECASE | re.DOTALL)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "0": "\0"}


@dataclass(frozen=True)
class ExportData:
    options: dict[str, Any]
    query: str


def parse_export_data(sql: str) -> ExportData | None:
    """The parts of an EXPORT DATA statement, or None when ``sql`` is not one."""
    head = _HEAD.match(sql)
    if head is None:
        return None
    options, end = _options(sql, head.end())
    rest = _AS.match(sql, end)
    if rest is None:
        raise JobFailure("invalidQuery", "Syntax error: Expected keyword AS after EXPORT DATA OPTIONS(...)")
    return ExportData(options, rest.group("query").strip().rstrip(";"))


def _options(sql: str, pos: int) -> tuple[dict[str, Any], int]:
    """Parse ``key = value, ...)`` from ``pos``; returns the options and the index after ``)``."""
    options: dict[str, Any] = {}
    while True:
        pos = _skip(sql, pos)
        if sql.startswith(")", pos):
            return options, pos + 1
        key = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").match(sql, pos)
        if key is None:
            raise JobFailure("invalidQuery", f"Syntax error: expected an option name at position {pos}")
        pos = _skip(sql, key.end())
        if not sql.startswith("=", pos):
            raise JobFailure("invalidQuery", f"Syntax error: expected '=' after option {key.group()}")
        value, pos = _value(sql, _skip(sql, pos + 1))
        options[key.group().lower()] = value
        pos = _skip(sql, pos)
        if sql.startswith(",", pos):
            pos += 1
        elif not sql.startswith(")", pos):
            raise JobFailure("invalidQuery", f"Syntax error: expected ',' or ')' after option {key.group()}")


def _skip(sql: str, pos: int) -> int:
    while pos < len(sql) and sql[pos].isspace():
        pos += 1
    return pos


def _value(sql: str, pos: int) -> tuple[Any, int]:
    raw = sql[pos : pos + 1].lower() == "r" and sql[pos + 1 : pos + 2] in ("'", '"')
    if raw:
        pos += 1
    quote = sql[pos : pos + 1]
    if quote in ("'", '"'):
        return _string(sql, pos, quote, raw)
    word = re.compile(r"[A-Za-z0-9_.+-]+").match(sql, pos)
    if word is None:
        raise JobFailure("invalidQuery", f"Syntax error: expected an option value at position {pos}")
    text = word.group()
    if text.lower() in ("true", "false"):
        return text.lower() == "true", word.end()
    try:
        return (float(text) if "." in text else int(text)), word.end()
    except ValueError:
        raise JobFailure("invalidQuery", f"Syntax error: unexpected option value {text}") from None


def _string(sql: str, pos: int, quote: str, raw: bool) -> tuple[str, int]:
    out: list[str] = []
    i = pos + 1
    while i < len(sql):
        c = sql[i]
        if c == "\\" and not raw and i + 1 < len(sql):
            out.append(_ESCAPES.get(sql[i + 1], sql[i + 1]))
            i += 2
            continue
        if c == quote:
            return "".join(out), i + 1
        out.append(c)
        i += 1
    raise JobFailure("invalidQuery", "Syntax error: unclosed string literal in OPTIONS")


def is_export_data(sql: str) -> bool:
    """True when ``sql`` starts (after comments) with ``EXPORT DATA ... OPTIONS(``."""
    return _HEAD.match(sql) is not None
