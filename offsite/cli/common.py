"""What every `offsite` command shares: how a command group is made, the --config option, loading
the config from it, and how an error ends a command."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from shared.config import Config
from shared.errors import ConfigError, OffsiteError, PermanentError, RejectedInput, TransientError


def new_app(**options: Any) -> typer.Typer:
    """A command group whose help reads docstrings and option help as Markdown: lines wrapped in
    the source join into paragraphs (Typer's "rich" mode keeps each line break, so help broke
    mid-sentence), `code` stays verbatim, and "- " lines are lists."""
    return typer.Typer(rich_markup_mode="markdown", **options)


ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="Config file (default: $OFFSITE_CONFIG or offsite.yaml).")
]


def load_cli_config(path: Path | None) -> Config:
    """The process's config (``--config`` wins over $OFFSITE_CONFIG); one error line and exit 2 if invalid.

    The path is exported as OFFSITE_CONFIG so shared code that reads ``shared.runtime.config()``
    sees the same file.
    """
    from shared import runtime

    if path is not None:
        os.environ["OFFSITE_CONFIG"] = str(path)
        runtime.reset()
    with exit_on_error():
        config = runtime.config()
    return config


@contextmanager
def exit_on_error(code: int | None = None, what: str = "") -> Iterator[None]:
    """An :class:`OffsiteError` raised inside ends the command: one ``error: <what><message>`` line
    on stderr and an exit, without a traceback. Anything else propagates.

    The exit status is ``code`` when given; by default it follows the error (the CLI's
    convention): 2 for bad input or config (:class:`RejectedInput`, :class:`ConfigError`, a bare
    :class:`OffsiteError` about the arguments), 1 when the operation failed although the input
    was fine (a :class:`TransientError`: a destination or service down now, try again; any other
    :class:`PermanentError`, e.g. access denied)."""
    try:
        yield
    except OffsiteError as exc:
        typer.echo(f"error: {what}{exc}", err=True)
        raise typer.Exit(code if code is not None else (1 if operation_failed(exc) else 2)) from None


def operation_failed(exc: OffsiteError) -> bool:
    """Whether ``exc`` says the operation failed (exit 1) rather than that it was asked wrongly (exit 2)."""
    if isinstance(exc, TransientError):
        return True
    return isinstance(exc, PermanentError) and not isinstance(exc, (RejectedInput, ConfigError))
