"""How `offsite` commands print data: one place for tables, JSON and the ``--json`` option.

- On a terminal, tables are drawn by rich (a header rule, bold headers, right-aligned numbers).
- Anywhere else (a pipe, a file, tests), the same table is plain text: no ANSI codes, no box
  characters, one line per row (nothing is wrapped or cut, whatever the width), columns
  separated by at least two spaces and an empty cell shown as ``-`` — so ``grep``, ``awk`` and
  ``str.split()`` keep working.
- With ``--json`` (:data:`JsonOption`) a command prints :func:`print_json` instead: plain
  ``json.dumps`` with sorted keys, no colour, parseable by any script.

Consoles are built per call from the current ``sys.stdout``/``sys.stderr``, so output captured
by test runners (which swap those streams) is seen by rich too.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Collection, Iterable, Sequence
from typing import Annotated, Any, TextIO

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (sorted keys, no colour) for scripts.")]

# Width given to rich when the output is not a terminal: wide enough that no row is ever
# wrapped or truncated (a table is only as wide as its content; this is just the upper bound).
PLAIN_WIDTH = 100_000
# What a Console off a terminal is given on top: no styles or colours, no cursor moves, no wrapping.
PLAIN_TEXT: dict[str, Any] = {
    "force_terminal": False,
    "force_interactive": False,
    "color_system": None,
    "no_color": True,
    "width": PLAIN_WIDTH,
    "soft_wrap": True,
}
EMPTY = "-"
# Long free-text columns: on a terminal they wrap; every other column stays on one line.
WRAPPING = frozenset({"LAST FAILURE", "NOTE", "DATA", "DESTINATIONS", "SHA1", "NAME"})


def is_terminal(stream: TextIO) -> bool:
    """True when ``stream`` is an interactive terminal (not a pipe, file or captured buffer)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def console(*, stderr: bool = False) -> Console:
    """A rich Console for stdout (or stderr): styled on a terminal, plain text otherwise."""
    stream = sys.stderr if stderr else sys.stdout
    plain = {} if is_terminal(stream) else PLAIN_TEXT
    return Console(file=stream, highlight=False, emoji=False, markup=False, **plain)


def cell(value: Any) -> str:
    """A table cell: ``-`` for None and empty strings, ints with thousands separators."""
    if value is None or value == "":
        return EMPTY
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def build_table(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], *, right: Collection[str] = (), plain: bool
) -> Table:
    """The rich Table for ``rows`` (``right`` names the right-aligned columns)."""
    if plain:
        table = Table(box=None, pad_edge=False, padding=(0, 1), show_edge=False, header_style="")
    else:
        table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False)
    for name in columns:
        wraps = not plain and name in WRAPPING
        justify = "right" if name in right else "left"
        table.add_column(name, justify=justify, no_wrap=not wraps, overflow="fold" if wraps else "ellipsis")
    for row in rows:
        table.add_row(*(Text(cell(value)) for value in row))
    return table


def print_table(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], *, right: Collection[str] = (), stderr: bool = False
) -> None:
    """Print a table with these column headers; each row has one value per column."""
    out = console(stderr=stderr)
    table = build_table(columns, rows, right=right, plain=not out.is_terminal)
    if out.is_terminal:
        out.print(table)
        return
    with out.capture() as captured:
        out.print(table)
    # rich pads every cell to its column's width; plain lines end where their text ends
    out.file.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))
    out.file.flush()


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON with sorted keys (dates and other values as strings)."""
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def print_line(text: str, *, stderr: bool = False) -> None:
    """One line of plain text (no markup, no highlighting, never wrapped)."""
    console(stderr=stderr).print(Text(text), soft_wrap=True)


def print_published(what: str, topic: str, request: Any, message_id: str, as_json: bool) -> None:
    """What a command that publishes one request prints: the message id, topic and request."""
    if as_json:
        print_json({"message_id": message_id, "topic": topic, "request": json.loads(request.to_json())})
    else:
        print_line(
            f"published {what} request {request.to_json().decode()} (message {message_id}); see `offsite status`"
        )


def human_bytes(n: int | float | None) -> str:
    """``1234567`` → ``1.2 MB`` (decimal units, as the demo summary prints them)."""
    if n is None:
        return EMPTY
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"
