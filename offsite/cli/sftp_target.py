"""The server an ``offsite sftp`` command talks to: a configured partner or explicit options.

:data:`CONNECTION_OPTIONS` are the options every partner command takes (added by
``offsite.cli.sftp.partner_command``); :func:`resolve_target` turns their values into a
:class:`Target`. Host keys are never accepted blindly.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from shared.config import SftpPartner, partner_from
from shared.errors import ConfigError
from shared.secrets import Secret


@dataclass(frozen=True)
class Target:
    name: str
    partner: SftpPartner
    configured: tuple[str, ...] = ()  # every partner the config names (none with --host)


CONNECTION_OPTIONS: list[inspect.Parameter] = [
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[kind, option])
    for name, kind, option in (
        (
            "partner",
            str | None,
            typer.Option("--partner", help="Partner name from the config (default: the only one)."),
        ),
        (
            "config",
            Path | None,
            typer.Option("--config", "-c", help="Config file (default: $OFFSITE_CONFIG or offsite.yaml)."),
        ),
        ("host", str | None, typer.Option("--host", help="Server host; with it, the config is not read.")),
        ("port", int | None, typer.Option("--port", help="SSH port (default 22).")),
        ("username", str | None, typer.Option("--username", "-u", help="Login name.")),
        ("password", str | None, typer.Option("--password", help="Password (or env:NAME / file:PATH).")),
        ("key", Path | None, typer.Option("--key", "-i", help="Private key file (RSA, ECDSA, Ed25519).")),
        ("passphrase", str | None, typer.Option("--passphrase", help="Passphrase of --key (or env:NAME).")),
        (
            "known_hosts",
            Path | None,
            typer.Option("--known-hosts", help="known_hosts file (default ~/.ssh/known_hosts)."),
        ),
        ("fingerprint", str | None, typer.Option("--fingerprint", help="Pinned host key, 'SHA256:…'.")),
        ("directory", str | None, typer.Option("--directory", "-d", help="Partner directory (overrides the config).")),
    )
]


def resolve_target(
    *,
    partner: str | None,
    config: Path | None,
    host: str | None,
    port: int | None,
    username: str | None,
    password: str | None,
    key: Path | None,
    passphrase: str | None,
    known_hosts: Path | None,
    fingerprint: str | None,
    directory: str | None,
) -> Target:
    """The partner to use: explicit ``--host`` options, else ``--partner`` (or the only one) from the config."""
    explicit: dict[str, Any] = {}
    if port is not None:
        explicit["port"] = port
    if username:
        explicit["username"] = username
    if password is not None:
        explicit["password"] = Secret(password, "--password")
    if key is not None:
        explicit["private_key"] = Secret(f"file:{key}", "--key")
    if passphrase is not None:
        explicit["private_key_passphrase"] = Secret(passphrase, "--passphrase")
    if known_hosts is not None:
        explicit["known_hosts"] = Secret(f"file:{known_hosts}", "--known-hosts")
    if fingerprint is not None:
        explicit["host_key_fingerprint"] = fingerprint
    if directory is not None:
        explicit["directory"] = directory
    if host is not None:
        if not username:
            raise ConfigError("--username is required with --host")
        if "password" not in explicit and "private_key" not in explicit:
            raise ConfigError("give --password or --key")
        if "known_hosts" not in explicit and "host_key_fingerprint" not in explicit:
            default = Path.home() / ".ssh" / "known_hosts"
            if not default.is_file():
                raise ConfigError(
                    "give --known-hosts FILE or --fingerprint SHA256:… (see `offsite sftp host-key`); "
                    "host keys are never accepted blindly"
                )
            explicit["known_hosts"] = Secret(f"file:{default}", "~/.ssh/known_hosts")
        return Target(host, partner_from({"host": host, "username": username, **explicit}, "--host"))
    from shared.config_load import load_config

    partners = load_config(config).destinations.sftp
    if partner is None:
        if len(partners) != 1:
            names = ", ".join(partners) or "none configured"
            raise ConfigError(f"--partner is required when the config does not have exactly one (partners: {names})")
        partner = next(iter(partners))
    if partner not in partners:
        raise ConfigError(f"destinations.sftp: no partner named {partner!r} (known: {', '.join(partners) or 'none'})")
    settings = partner_from({**dict(partners[partner]), **explicit}, f"destinations.sftp.{partner}")
    return Target(partner, settings, tuple(partners))
