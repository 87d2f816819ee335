"""SQL text for the ingest's BigQuery scripts: identifiers and literals that cannot inject.

Multi-statement scripts (the apply transaction) take no query parameters on the local
BigQuery, so values are written as literals: a string that is not plainly safe becomes
``SAFE_CONVERT_BYTES_TO_STRING(FROM_HEX('…'))``, whose alphabet is 0-9a-f. Identifiers are
checked against BigQuery's column/table name pattern and backquoted.
"""

from __future__ import annotations

import re

from shared.errors import PermanentError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,299}$")
_PLAIN = re.compile(r"^[A-Za-z0-9_ :.+\-]{0,200}$")


def ident(name: str) -> str:
    """A column or table name, backquoted; PermanentError if it is not a plain BigQuery name."""
    if not _NAME.match(name):
        raise PermanentError(f"{name!r} is not a valid BigQuery column or table name (letters, digits, underscores)")
    return f"`{name}`"


def string(value: str | None) -> str:
    """A STRING literal (NULL for None) that no value can break out of."""
    if value is None:
        return "NULL"
    if _PLAIN.match(value):
        return f"'{value}'"
    return f"SAFE_CONVERT_BYTES_TO_STRING(FROM_HEX('{value.encode('utf-8').hex()}'))"


def integer(value: int) -> str:
    return str(int(value))
