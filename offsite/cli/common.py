"""What every `offsite` command shares: the --config option and loading the config from it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from shared.config import Config
from shared.errors import ConfigError

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
    try:
        return runtime.config()
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
