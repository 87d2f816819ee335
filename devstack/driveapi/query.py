"""The ``q`` subset of files.list and the ``fields`` partial-response selector.

Supported ``q`` terms, joined by ``and`` (``or``, ``not`` and parentheses are refused with a
400 naming the term, as Drive refuses what it cannot parse):

- ``name = 'x'``, ``name != 'x'``, ``name contains 'x'``
- ``mimeType = 'x'``, ``mimeType != 'x'``
- ``'ID' in parents``
- ``trashed = true|false``
- ``appProperties has { key='k' and value='v' }`` (also ``properties``)

Strings are single-quoted; ``\\'`` and ``\\\\`` are escapes, as in Drive's query language.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Predicate = Callable[[dict[str, Any]], bool]


class QueryError(ValueError):
    """The query is outside the supported subset or malformed; the message names the term."""


_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<op>!=|=|\{|\}|\(|\))|(?P<word>[A-Za-z_][A-Za-z0-9_.]*))")


def _tokens(q: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    q = q.strip()
    while pos < len(q):
        found = _TOKEN.match(q, pos)
        if found is None or found.end() == pos:
            raise QueryError(f"Invalid Value: cannot parse q at {q[pos : pos + 20]!r}")
        pos = found.end()
        kind = found.lastgroup
        assert kind is not None
        text = found.group(kind)
        if kind == "str":
            text = re.sub(r"\\(.)", r"\1", text[1:-1])
        out.append((kind, text))
        while pos < len(q) and q[pos].isspace():
            pos += 1
    return out


def parse_q(q: str | None) -> Predicate:
    """A predicate over file records for ``q``; QueryError for anything unsupported."""
    if not q or not q.strip():
        return lambda record: True
    tokens = _tokens(q)
    terms: list[Predicate] = []
    i = 0
    while i < len(tokens):
        term, i = _term(tokens, i)
        terms.append(term)
        if i < len(tokens):
            kind, text = tokens[i]
            if kind != "word" or text.lower() != "and":
                raise QueryError(f"Invalid Value: only 'and' joins terms here, found {text!r}")
            i += 1
    return lambda record: all(term(record) for term in terms)


def _term(tokens: list[tuple[str, str]], i: int) -> tuple[Predicate, int]:
    def at(k: int) -> tuple[str, str]:
        if k >= len(tokens):
            raise QueryError("Invalid Value: q ends in the middle of a term")
        return tokens[k]

    kind, text = at(i)
    if kind == "str":  # 'ID' in parents
        if at(i + 1) != ("word", "in") or at(i + 2) != ("word", "parents"):
            raise QueryError(f"Invalid Value: expected '{text}' in parents")
        parent = text
        return (lambda r: parent in r.get("parents", [])), i + 3
    if kind != "word":
        raise QueryError(f"Invalid Value: unexpected {text!r} in q")
    field = text
    if field in ("appProperties", "properties"):
        if at(i + 1) != ("word", "has") or at(i + 2) != ("op", "{"):
            raise QueryError(f"Invalid Value: expected {field} has {{ key='k' and value='v' }}")
        k = i + 3
        expect = [("word", "key"), ("op", "=")]
        if [at(k), at(k + 1)] != expect or at(k + 2)[0] != "str":
            raise QueryError(f"Invalid Value: expected key='k' in {field} has {{...}}")
        key = at(k + 2)[1]
        if at(k + 3) != ("word", "and") or [at(k + 4), at(k + 5)] != [("word", "value"), ("op", "=")]:
            raise QueryError(f"Invalid Value: expected and value='v' in {field} has {{...}}")
        value = at(k + 6)[1]
        if at(k + 7) != ("op", "}"):
            raise QueryError(f"Invalid Value: expected '}}' closing {field} has {{...}}")
        return (lambda r: (r.get(field) or {}).get(key) == value), k + 8
    op_kind, op = at(i + 1)
    value_kind, value = at(i + 2)
    if field == "trashed":
        if op != "=" or value_kind != "word" or value not in ("true", "false"):
            raise QueryError(f"Invalid Value: expected trashed = true|false, found trashed {op} {value}")
        wanted = value == "true"
        return (lambda r: bool(r.get("trashed")) == wanted), i + 3
    if field not in ("name", "mimeType") or value_kind != "str":
        raise QueryError(f"Invalid Value: unsupported term {field} {op} {value!r}")
    if op == "=":
        return (lambda r: r.get(field) == value), i + 3
    if op == "!=":
        return (lambda r: r.get(field) != value), i + 3
    if op == "contains" or (op_kind == "word" and op == "contains"):
        return (lambda r: value in str(r.get(field, ""))), i + 3
    raise QueryError(f"Invalid Value: unsupported operator {op!r} for {field}")


# ---- fields ------------------------------------------------------------------------------


def parse_fields(fields: str) -> dict[str, Any]:
    """``"files(id,name),nextPageToken"`` → ``{"files": {"id": {}, "name": {}}, "nextPageToken": {}}``;
    ``*`` selects everything (``{"*": {}}``)."""
    tree: dict[str, Any] = {}
    stack = [tree]
    name = ""
    for ch in fields.replace(" ", ""):
        if ch in ",()":
            node = stack[-1]
            if name:
                node.setdefault(name, {})
            if ch == "(":
                if not name:
                    raise QueryError(f"Invalid field selection {fields!r}")
                stack.append(node[name])
            elif ch == ")":
                if len(stack) == 1:
                    raise QueryError(f"Invalid field selection {fields!r}")
                stack.pop()
            name = ""
        elif ch == "/":
            stack[-1].setdefault(name, {})
            stack.append(stack[-1][name])
            name = ""
        else:
            name += ch
    if name:
        stack[-1].setdefault(name, {})
    return tree


def select(value: Any, tree: dict[str, Any]) -> Any:
    """``value`` reduced to the fields of ``tree`` (an empty tree keeps everything)."""
    if not tree or "*" in tree:
        return value
    if isinstance(value, list):
        return [select(v, tree) for v in value]
    if not isinstance(value, dict):
        return value
    return {key: select(value[key], sub) for key, sub in tree.items() if key in value}
