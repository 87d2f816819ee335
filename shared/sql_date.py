"""Where ``{date}`` stands in a configured query, and what it becomes there.

A query export's SQL names the run's day with ``{date}``. What the placeholder must become
depends on where it is written, so the SQL is scanned with BigQuery's lexical rules (string
literals with their prefixes and triple quotes, backtick-quoted names, comments):

- **an expression** (``WHERE order_date = {date}``): the DATE query parameter ``@run_date``.
- **inside a string literal** (seed 003's ``WHERE DATE(created_at) = '{date}'``): the date's
  text ``2025-01-08``, so the literal stays a literal. BigQuery coerces a string literal
  compared with a DATE to a DATE, and compares it as text with a STRING column: the quoted
  form means the date against both. (A parameter would not do: ``'@run_date'`` is the text
  ``@run_date``, which fails against a DATE and matches no row of a STRING column.)
- **inside a table name** (``events_{date}``, ``\\`p.d.events_{date}\\```): ``YYYYMMDD``, the
  suffix BigQuery's date-sharded tables use. An unquoted name must still start with a letter
  or ``_`` once substituted; otherwise it is refused with what to write instead.
- **inside a comment**: the date's text (harmless; keeps the job's SQL readable).

Only digits and ``-`` are ever pasted into SQL, and only from a ``datetime.date``: request
text never becomes SQL. Problems (an unterminated literal, a name that cannot start with the
date) raise :class:`SqlDateError` naming the position and what to write instead.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal

PLACEHOLDER = "{date}"
PARAMETER = "run_date"

Context = Literal["expression", "string", "identifier", "comment"]

_IDENT_CHAR = re.compile(r"[A-Za-z0-9_]")
_PLACEHOLDER = re.compile(re.escape(PLACEHOLDER))
# A name as BigQuery reads it unquoted, with {date} standing for the digits it becomes.
_NAME_TOKEN = re.compile(r"(?:[A-Za-z0-9_]|\{date\})+")
_STRING_START = re.compile(r"(?i)(?:rb|br|r|b)?('''|\"\"\"|'|\")")


class SqlDateError(ValueError):
    """The SQL cannot be given a date as written; the message says where and what to write."""


@dataclass(frozen=True)
class Placeholder:
    """One ``{date}`` in the SQL: its offset and the context it was written in."""

    offset: int
    context: Context


def _scan(sql: str) -> list[tuple[int, int, Context]]:
    """The SQL split into (start, end, context) spans covering it entirely."""
    spans: list[tuple[int, int, Context]] = []
    i, code_start, n = 0, 0, len(sql)

    def close_code(at: int) -> None:
        if at > code_start:
            spans.append((code_start, at, "expression"))

    while i < n:
        ch = sql[i]
        if sql.startswith("--", i) or ch == "#":
            end = sql.find("\n", i)
            end = n if end < 0 else end
            close_code(i)
            spans.append((i, end, "comment"))
            i = code_start = end
            continue
        if sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            if end < 0:
                raise SqlDateError(f"a comment opened at character {i + 1} is never closed")
            close_code(i)
            spans.append((i, end + 2, "comment"))
            i = code_start = end + 2
            continue
        if ch == "`":
            end = _closing(sql, i + 1, "`", raw=False, what="a backtick-quoted name", opened=i)
            close_code(i)
            spans.append((i, end + 1, "identifier"))
            i = code_start = end + 1
            continue
        string = _STRING_START.match(sql, i)
        if string and not (i > 0 and _IDENT_CHAR.match(sql[i - 1]) and string.start(1) > i):
            quote = string.group(1)
            raw = "r" in sql[i : string.start(1)].lower()
            end = _closing(sql, string.end(), quote, raw=raw, what="a string literal", opened=i)
            close_code(i)
            spans.append((i, end + len(quote), "string"))
            i = code_start = end + len(quote)
            continue
        i += 1
    close_code(n)
    return spans


def _closing(sql: str, start: int, quote: str, *, raw: bool, what: str, opened: int) -> int:
    """Offset of the quote closing a literal or quoted name that starts at ``start``."""
    i = start
    while i < len(sql):
        if sql[i] == "\\" and not raw:
            i += 2
            continue
        if sql.startswith(quote, i):
            return i
        if raw and sql[i] == "\\":  # a raw literal still cannot end on an escaped quote
            i += 2
            continue
        i += 1
    raise SqlDateError(f"{what} opened at character {opened + 1} is never closed")


def placeholders(sql: str) -> list[Placeholder]:
    """Every ``{date}`` of ``sql`` with its context; raises SqlDateError for SQL that cannot take a date."""
    found: list[Placeholder] = []
    for start, end, context in _scan(sql):
        if context != "expression":
            found += [Placeholder(m.start(), context) for m in _PLACEHOLDER.finditer(sql, start, end)]
            continue
        for token in _NAME_TOKEN.finditer(sql, start, end):
            word = token.group()
            if PLACEHOLDER not in word:
                continue
            if word == PLACEHOLDER:
                found.append(Placeholder(token.start(), "expression"))
                continue
            if word[0].isdigit() or word.startswith(PLACEHOLDER):
                raise SqlDateError(
                    f"{word!r} at character {token.start() + 1}: an unquoted name cannot start with the date "
                    f"(digits); write it in backticks (`{word}`, where {{date}} becomes YYYYMMDD), or compare "
                    f"the date in a WHERE clause ('{{date}}' in quotes is the date's text, {{date}} alone a DATE)"
                )
            found += [
                Placeholder(m.start(), "identifier") for m in _PLACEHOLDER.finditer(sql, token.start(), token.end())
            ]
    return found


def render(sql: str, date: dt.date) -> tuple[str, bool]:
    """``sql`` with every ``{date}`` replaced for ``date``; and whether ``@run_date`` is used.

    Expressions get ``@run_date`` (the caller passes it as a DATE parameter), string literals
    and comments ``YYYY-MM-DD``, names ``YYYYMMDD``.
    """
    text = {"expression": f"@{PARAMETER}", "string": date.isoformat(), "comment": date.isoformat()}
    out, last, uses_parameter = [], 0, False
    for place in placeholders(sql):
        out.append(sql[last : place.offset])
        out.append(date.strftime("%Y%m%d") if place.context == "identifier" else text[place.context])
        uses_parameter = uses_parameter or place.context == "expression"
        last = place.offset + len(PLACEHOLDER)
    out.append(sql[last:])
    return "".join(out), uses_parameter


def without_terminator(sql: str) -> str:
    """``sql`` without what may follow its last token: ``;``, whitespace and comments. A closing
    ``;`` is fine after EXPORT DATA but not inside the subquery that COUNT(*) and the fingerprint
    wrap the query in; a trailing comment would hide the ``)`` closing that subquery."""
    spans = _scan(sql)
    while spans:
        start, end, context = spans[-1]
        text = sql[start:end]
        if context == "comment" or (context == "expression" and not text.strip(" \t\r\n;")):
            spans.pop()
            continue
        if context == "expression":
            return sql[:start] + text.rstrip(" \t\r\n;")
        return sql[:end]
    return ""
