"""What every `offsite` command shares: the --config option, loading the config from it, and how an
error ends a command."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from shared.config import Config
from shared.errors import OffsiteError

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
def exit_on_error(code: int = 2, what: str = "") -> Iterator[None]:
    """An :class:`OffsiteError` raised inside ends the command: one ``error: <what><message>`` line
    on stderr and exit ``code`` (2: bad input or config, by the CLI's convention; 1: the
    operation failed), without a traceback. Anything else propagates."""
    try:
        yield
    except OffsiteError as exc:
        typer.echo(f"error: {what}{exc}", err=True)
        raise typer.Exit(code) from None
