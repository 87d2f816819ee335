"""offsite config: validate the configuration, show it (secrets masked), document every field."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Union

import typer
import yaml

from shared.config import Config
from shared.config_load import config_path, load_config, to_dict
from shared.errors import ConfigError
from shared.secrets import Secret

app = typer.Typer(no_args_is_help=True)

PathOption = typer.Option(None, "--config", "-c", help="Config file (default: $OFFSITE_CONFIG or offsite.yaml).")


def _load(path: Path | None) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def validate(path: Path | None = PathOption) -> None:
    """Check the config; print one line naming the field and value on error (exit 2)."""
    config = _load(path)
    typer.echo(
        f"ok: {path or config_path()} ({len(config.datasets)} datasets, {len(config.exports)} exports, destinations: {', '.join(config.destination_names()) or 'none'})"
    )


@app.command()
def show(path: Path | None = PathOption) -> None:
    """Print the effective config (file + OFFSITE__* env overrides + defaults); secrets masked."""
    typer.echo(yaml.safe_dump(to_dict(_load(path)), sort_keys=False))


@app.command()
def docs() -> None:
    """Every config field with its type, default and help text."""
    for line in field_docs(Config, ""):
        typer.echo(line)


def _inner(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return next(a for a in typing.get_args(tp) if a is not type(None))
    if origin is dict:
        return typing.get_args(tp)[1]
    if origin is tuple and dataclasses.is_dataclass(typing.get_args(tp)[0]):
        return typing.get_args(tp)[0]
    return tp


def field_docs(cls: type, prefix: str) -> list[str]:
    lines = []
    hints = typing.get_type_hints(cls)
    for fld in dataclasses.fields(cls):
        tp = hints[fld.name]
        origin = typing.get_origin(tp)
        key = f"{prefix}{fld.name}"
        if origin is dict:
            key += ".NAME"
        elif origin is tuple and dataclasses.is_dataclass(typing.get_args(tp)[0]):
            key += "[]"
        inner = _inner(tp)
        nested = dataclasses.is_dataclass(inner) and inner is not Secret
        required = fld.default is None and typing.get_origin(tp) not in (Union, types.UnionType)
        if required:
            suffix = " (required)"
        elif fld.default is dataclasses.MISSING or nested or fld.default is None:
            suffix = " (secret)" if inner is Secret else ""
        else:
            suffix = f" (default: {fld.default!r})"
        lines.append(f"{key}{suffix}: {fld.metadata.get('help', '')}")
        if nested:
            lines.extend(field_docs(inner, key + "."))
    return lines
