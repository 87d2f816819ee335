"""offsite config: validate the configuration, show it (secrets masked), document every field."""

from __future__ import annotations

from pathlib import Path

import typer
import yaml

from shared.config import Config, config_path, load_config, to_dict
from shared.config.docs import field_docs
from shared.errors import ConfigError

app = typer.Typer(no_args_is_help=True)

PathOption = typer.Option(None, "--config", "-c", help="Config file (default: $OFFSITE_CONFIG or offsite.yaml).")


def _load(path: Path | None) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        for line in str(exc).splitlines():  # one line per problem
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(2) from None


@app.command()
def validate(path: Path | None = PathOption) -> None:
    """Check the config; print one line naming the field and value on error (exit 2)."""
    config = _load(path)
    typer.echo(
        f"ok: {path or config_path()} ({len(config.datasets)} datasets, {len(config.exports)} exports, destinations: {', '.join(config.destination_names()) or 'none'}"
        + (f"; {len(config.collect.jobs)} collect jobs" if config.collect.jobs else "")
        + ")"
    )


@app.command()
def show(path: Path | None = PathOption) -> None:
    """Print the effective config (file + OFFSITE__* env overrides + defaults); secrets masked."""
    typer.echo(yaml.safe_dump(to_dict(_load(path)), sort_keys=False))


@app.command()
def docs() -> None:
    """Every config field with its default and help text (generated from the config models)."""
    for line in field_docs(Config):
        typer.echo(line)
