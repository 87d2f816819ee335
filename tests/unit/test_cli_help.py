"""Every `offsite … --help` shows its text whole: each paragraph of a command's docstring, each
option's help and each line of a group's command list on one line of a wide terminal, with no
word lost. Typer's "rich" markup kept every line break of the source (help broke mid-sentence)
and would drop a `<name>` or `[word]` as markup; `offsite.cli.common.new_app` renders Markdown."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from typing import Any

import typer
from typer.testing import CliRunner

from offsite.cli import app

WIDE = {"COLUMNS": "3000"}  # wide enough that rich never wraps: a line break is the text's own
LIST_ITEM = re.compile(r"\n(?=\s*(?:[-*]|\d+\.) )")
ITEM_MARK = re.compile(r"^\s*(?:[-*]|\d+\.) ")


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


ALL = list(_commands(typer.main.get_command(app)))


def _flat(text: str) -> str:
    """Text as a reader sees it: Markdown's backticks gone, panel borders and runs of space as one."""
    text = re.sub(r"[│╭╮╰╯─]", " ", text.replace("`", ""))
    return re.sub(r"\s+", " ", text).strip()


def _help_lines(path: tuple[str, ...]) -> list[str]:
    result = CliRunner().invoke(app, [*path, "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    return [_flat(line) for line in result.output.splitlines()]


def _blocks(text: str) -> list[str]:
    """A help text's paragraphs, a list's items each its own, as they should read."""
    paragraphs = inspect.cleandoc(text).partition("\f")[0].split("\n\n")
    items = [item for p in paragraphs for item in LIST_ITEM.split(p)]
    return [flat for item in items if (flat := _flat(ITEM_MARK.sub("", item)))]


def _broken(lines: list[str], texts: list[str]) -> list[str]:
    return [block for text in texts for block in _blocks(text) if not any(block in line for line in lines)]


def test_every_command_shows_each_paragraph_and_option_help_whole() -> None:
    broken = {}
    for path, command in ALL:
        texts = [command.help or ""] + [p.help for p in command.params if getattr(p, "help", None)]
        if missing := _broken(_help_lines(path), texts):
            broken[" ".join(("offsite", *path))] = missing
    assert len(ALL) > 50  # the whole tree was walked
    assert not broken, broken


def test_every_group_lists_each_command_with_its_summary_whole() -> None:
    broken = {}
    for path, group in ALL:
        subcommands = getattr(group, "commands", {})
        if not subcommands:
            continue
        summaries = [(sub.help or "").split("\n\n")[0] for sub in subcommands.values() if not sub.hidden]
        if missing := _broken(_help_lines(path), summaries):
            broken[" ".join(("offsite", *path))] = missing
    assert not broken, broken
