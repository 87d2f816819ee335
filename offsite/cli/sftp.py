"""offsite sftp: operate on an SFTP partner's server (seed 003's ``python -m src.sftp``, and more).

    offsite sftp check                       connect, verify the host key, show what the server offers
    offsite sftp host-key --host H [--port]  the key a server offers (to confirm with the partner, then pin)
    offsite sftp ls [-l] [PATH]              list a folder (relative to the partner directory)
    offsite sftp tree [--depth N] [PATH]     the folder tree
    offsite sftp upload --gcs-uri gs://B/O --remote-file NAME   stream one object, as deliveries do
    offsite sftp rm PATH [-r] [-f]           delete a file (or a folder with -r); asks unless -f
    offsite sftp clear [-f]                  delete everything inside the partner directory; asks unless -f

The server is a partner from the config (``--partner NAME``, default the only one) or given
explicitly (``--host --port --username --password/--key --known-hosts/--fingerprint
--directory``). Host keys are always verified; nothing is ever deleted outside the partner's
directory.
"""

from __future__ import annotations

import inspect
import posixpath
import stat as statmod
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from shared.config import SftpPartner, partner_from
from shared.errors import ConfigError, OffsiteError
from shared.secrets import Secret

app = typer.Typer(no_args_is_help=True)


@dataclass(frozen=True)
class Target:
    name: str
    partner: SftpPartner


# ---- connection options, added to every command ----------------------------------------------

_COMMON: list[inspect.Parameter] = [
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


def _target(
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
    return Target(partner, partner_from({**dict(partners[partner]), **explicit}, f"destinations.sftp.{partner}"))


def partner_command(fn: Callable[..., None]) -> Callable[..., None]:
    """Register ``fn(target, ...)`` as a command taking the connection options too."""
    own = inspect.signature(fn, eval_str=True)
    params = [p for p in own.parameters.values() if p.name != "target"] + _COMMON
    names = [p.name for p in _COMMON]

    def command(**kwargs: Any) -> None:
        common = {n: kwargs.pop(n) for n in names}
        try:
            fn(_target(**common), **kwargs)
        except OffsiteError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None

    command.__signature__ = own.replace(parameters=params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = fn.__doc__
    command.__name__ = fn.__name__
    return app.command(fn.__name__.rstrip("_").replace("_", "-"))(command)


# ---- helpers ---------------------------------------------------------------------------------


def _destination(target: Target) -> Any:
    from shared.destinations.sftp import SftpDestination

    return SftpDestination(target.name, target.partner)


def _inside(target: Target, path: str) -> str:
    """``path`` (relative to the partner directory, or absolute inside it) as an absolute path;
    anything outside the directory is refused."""
    root = posixpath.normpath(target.partner.directory)
    full = posixpath.normpath(path if path.startswith("/") else posixpath.join(root, path))
    if full != root and not full.startswith(root.rstrip("/") + "/"):
        raise ConfigError(f"{path!r} is outside the partner directory {root}; refusing")
    return full


def _listing(session: Any, folder: str) -> list[Any]:
    from shared.sftp_connect import sftp_errors

    with sftp_errors(session.partner, "listing", folder):
        return sorted(session.sftp.listdir_attr(folder), key=lambda a: a.filename)


def _long(attrs: Any) -> str:
    mode = statmod.filemode(attrs.st_mode or 0)
    when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(attrs.st_mtime or 0))
    return f"{mode} {attrs.st_size or 0:>14,} {when}Z {attrs.filename}"


def _remove_tree(session: Any, path: str) -> Iterator[str]:
    """Delete ``path`` (file or folder, recursively); yields each removed path."""
    from shared.sftp_connect import sftp_errors

    with sftp_errors(session.partner, "deleting", path):
        attrs = session.sftp.lstat(path)
        if statmod.S_ISDIR(attrs.st_mode or 0):
            for entry in _listing(session, path):
                yield from _remove_tree(session, posixpath.join(path, entry.filename))
            session.sftp.rmdir(path)
        else:
            session.sftp.remove(path)
    yield path


# ---- commands ----------------------------------------------------------------------------------


@partner_command
def check(target: Target) -> None:
    """Connect, verify the host key, log in and look at the partner directory."""
    from shared.sftp_connect import open_session, sftp_errors

    started = time.monotonic()
    session = open_session(target.name, target.partner)
    try:
        typer.echo(
            f"connected to {target.partner.host}:{target.partner.port} as {target.partner.username} "
            f"in {time.monotonic() - started:.2f}s"
        )
        typer.echo(f"host key:   {session.host_key} (verified)")
        typer.echo(f"cipher:     {session.cipher}")
        typer.echo(f"extensions: {', '.join(sorted(session.extensions)) or '(none)'}")
        typer.echo(f"write size: {session.max_write} bytes per request")
        offers_rename = "posix-rename@openssh.com" in session.extensions
        if target.partner.posix_rename and not offers_rename:
            typer.echo("warning:    the server does not offer posix-rename@openssh.com; set posix_rename: false")
        directory = target.partner.directory
        with sftp_errors(target.name, "checking the directory", directory):
            attrs = session.sftp.stat(directory)
        if not statmod.S_ISDIR(attrs.st_mode or 0):
            raise ConfigError(f"directory {directory} is not a folder on the server")
        typer.echo(f"directory:  {directory} ({len(_listing(session, directory))} entries)")
    finally:
        session.close()
    typer.echo("ok")


@app.command("host-key")
def host_key(
    host: Annotated[str, typer.Option("--host", help="Server host.")],
    port: Annotated[int, typer.Option("--port", help="SSH port.")] = 22,
) -> None:
    """Show the host key a server offers, to confirm with the partner before pinning it."""
    from shared.sftp_connect import scan_host_key
    from shared.sftp_hostkeys import describe_key, known_hosts_line

    try:
        kind, blob = scan_host_key(host, port)
    except OffsiteError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    import base64

    typer.echo(f"offered:          {describe_key(kind, base64.b64decode(blob))}")
    typer.echo(f"known_hosts line: {known_hosts_line(host, port, kind, blob)}")
    typer.echo("NOT trusted yet: confirm the fingerprint with the partner over another channel, then pin it.")


@partner_command
def ls(
    target: Target,
    path: Annotated[str, typer.Argument(help="Folder, relative to the partner directory.")] = "",
    long: Annotated[bool, typer.Option("-l", "--long", help="Mode, size, modification time.")] = False,
) -> None:
    """List a folder of the partner directory."""
    from shared.sftp_connect import open_session

    folder = _inside(target, path)
    session = open_session(target.name, target.partner)
    try:
        for attrs in _listing(session, folder):
            suffix = "/" if statmod.S_ISDIR(attrs.st_mode or 0) else ""
            typer.echo(_long(attrs) + suffix if long else attrs.filename + suffix)
    finally:
        session.close()


@partner_command
def tree(
    target: Target,
    path: Annotated[str, typer.Argument(help="Folder, relative to the partner directory.")] = "",
    depth: Annotated[int, typer.Option("--depth", help="Levels to show.")] = 3,
) -> None:
    """Show the folder tree below a folder, with file sizes."""
    from shared.sftp_connect import open_session

    folder = _inside(target, path)
    session = open_session(target.name, target.partner)

    def walk(current: str, prefix: str, level: int) -> None:
        entries = _listing(session, current)
        for i, attrs in enumerate(entries):
            last = i == len(entries) - 1
            is_dir = statmod.S_ISDIR(attrs.st_mode or 0)
            label = attrs.filename + ("/" if is_dir else f"  ({attrs.st_size or 0:,} bytes)")
            typer.echo(f"{prefix}{'└── ' if last else '├── '}{label}")
            if is_dir and level < depth:
                walk(posixpath.join(current, attrs.filename), prefix + ("    " if last else "│   "), level + 1)

    try:
        typer.echo(folder)
        walk(folder, "", 1)
    finally:
        session.close()


@partner_command
def upload(
    target: Target,
    gcs_uri: Annotated[str, typer.Option("--gcs-uri", help="gs://BUCKET/OBJECT to send.")],
    remote_file: Annotated[str, typer.Option("--remote-file", help="Path relative to the partner directory.")],
) -> None:
    """Stream one GCS object to the server (temp name + atomic rename; skipped when identical)."""
    from shared.gcp import gcs
    from shared.sftp_source import ObjectSource

    if not gcs_uri.startswith("gs://") or "/" not in gcs_uri[5:]:
        raise ConfigError(f"--gcs-uri {gcs_uri!r} is not gs://BUCKET/OBJECT")
    bucket, name = gcs_uri[5:].split("/", 1)
    _inside(target, remote_file)
    info = gcs.stat(bucket, name)
    if info is None:
        raise ConfigError(f"{gcs_uri} does not exist")
    started = time.monotonic()
    source = ObjectSource(info)
    with _destination(target) as destination:
        try:
            result = destination.put(remote_file, source, info.size, sha1=info.metadata.get("sha1"))  # type: ignore[arg-type]
        finally:
            source.close()
        elapsed = time.monotonic() - started
        rate = f", {info.size / 1e6 / elapsed:.1f} MB/s" if elapsed > 0 and result.status != "unchanged" else ""
        typer.echo(
            f"{result.status}: {destination.remote_path(result.path)} ({result.size:,} bytes, sha1 {result.sha1}{rate})"
        )


@partner_command
def rm(
    target: Target,
    path: Annotated[str, typer.Argument(help="File or folder, relative to (or inside) the partner directory.")],
    recursive: Annotated[bool, typer.Option("-r", "--recursive", help="Delete a folder and everything in it.")] = False,
    force: Annotated[bool, typer.Option("-f", "--force", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a file, or a folder with -r. Never outside the partner directory."""
    from shared.sftp_connect import open_session, sftp_errors

    full = _inside(target, path)
    if full == posixpath.normpath(target.partner.directory):
        raise ConfigError("refusing to delete the partner directory itself; use `offsite sftp clear` to empty it")
    session = open_session(target.name, target.partner)
    try:
        with sftp_errors(target.name, "stat", full):
            attrs = session.sftp.lstat(full)
        is_dir = statmod.S_ISDIR(attrs.st_mode or 0)
        if is_dir and not recursive:
            raise ConfigError(f"{full} is a folder; use -r to delete it with its contents")
        what = f"folder {full} and everything in it" if is_dir else f"file {full}"
        if not force and not typer.confirm(f"delete {what}?", default=False):
            typer.echo("nothing deleted")
            raise typer.Exit(1)
        count = sum(1 for _ in _remove_tree(session, full))
        typer.echo(f"deleted {count} item(s)")
    finally:
        session.close()


@partner_command
def clear(
    target: Target,
    force: Annotated[bool, typer.Option("-f", "--force", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete everything inside the partner directory (the directory itself stays)."""
    from shared.sftp_connect import open_session

    root = posixpath.normpath(target.partner.directory)
    if root == "/":
        raise ConfigError("refusing to clear '/': the partner directory must be a real folder")
    session = open_session(target.name, target.partner)
    try:
        entries = _listing(session, root)
        if not entries:
            typer.echo(f"{root} is already empty")
            return
        if not force and not typer.confirm(f"delete all {len(entries)} entries in {root}?", default=False):
            typer.echo("nothing deleted")
            raise typer.Exit(1)
        count = sum(sum(1 for _ in _remove_tree(session, posixpath.join(root, e.filename))) for e in entries)
        typer.echo(f"deleted {count} item(s) in {root}")
    finally:
        session.close()
