"""offsite sftp: operate on an SFTP partner's server: check it, list, upload, download and delete files.

    offsite sftp check                       connect, verify the host key, show what the server offers
    offsite sftp host-key --host H [--port]  the key a server offers (to confirm with the partner, then pin)
    offsite sftp ls [-l] [PATH]              list a folder (relative to the partner directory)
    offsite sftp tree [--depth N] [PATH]     the folder tree
    offsite sftp upload --gcs-uri gs://B/O --remote-file NAME   stream one object, as deliveries do
    offsite sftp get PATH [LOCAL] [--force]  download one file (checked against the size the server lists)
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
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from offsite.cli.browse import HERE
from offsite.cli.common import exit_on_error, new_app
from offsite.cli.output import JsonOption, print_json, print_line, print_table
from offsite.cli.sftp_paths import entry, inside, listing, listing_named, remove_tree, resolved_inside
from offsite.cli.sftp_target import CONNECTION_OPTIONS, Target, resolve_target
from shared.errors import ConfigError

app = new_app(no_args_is_help=True)


def partner_command(fn: Callable[..., None]) -> Callable[..., None]:
    """Register ``fn(target, ...)`` as a command taking the connection options too."""
    own = inspect.signature(fn, eval_str=True)
    params = [p for p in own.parameters.values() if p.name != "target"] + CONNECTION_OPTIONS
    names = [p.name for p in CONNECTION_OPTIONS]

    def command(**kwargs: Any) -> None:
        common = {n: kwargs.pop(n) for n in names}
        with exit_on_error(1):
            fn(resolve_target(**common), **kwargs)

    command.__signature__ = own.replace(parameters=params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = fn.__doc__
    command.__name__ = fn.__name__
    return app.command(fn.__name__.rstrip("_").replace("_", "-"))(command)


# ---- helpers ---------------------------------------------------------------------------------


def _destination(target: Target) -> Any:
    from shared.destinations.sftp.destination import SftpDestination

    return SftpDestination(target.name, target.partner)


# ---- commands ----------------------------------------------------------------------------------


@partner_command
def check(target: Target, as_json: JsonOption = False) -> None:
    """Connect, verify the host key, log in and look at the partner directory."""
    report = _check(target)
    if as_json:
        print_json(report)
        return
    print_line(f"connected to {report['host']}:{report['port']} as {report['username']} in {report['connect_s']:.2f}s")
    print_line(f"host key:   {report['host_key']} (verified)")
    print_line(f"cipher:     {report['cipher']} (ssh client: {report['ssh_client']})")
    print_line(f"extensions: {', '.join(report['extensions']) or '(none)'}")
    print_line(f"write size: {report['max_write']} bytes per request")
    for warning in report["warnings"]:
        print_line(f"warning:    {warning}")
    print_line(f"directory:  {report['directory']} ({report['entries']} entries)")
    print_line("ok")


def _check(target: Target) -> dict[str, Any]:
    """What ``check`` finds: the connection, the host key, the server's offer, the directory."""
    from shared.destinations.sftp.connect import sftp_errors
    from shared.destinations.sftp.session import open_session

    started = time.monotonic()
    session = open_session(target.name, target.partner)
    try:
        report: dict[str, Any] = {
            "partner": target.name,
            "host": target.partner.host,
            "port": target.partner.port,
            "username": target.partner.username,
            "connect_s": round(time.monotonic() - started, 3),
            "host_key": session.host_key,
            "ssh_client": session.client,
            "cipher": session.cipher,
            "extensions": sorted(session.extensions),
            "max_write": session.max_write,
            "warnings": [],
        }
        if target.partner.posix_rename and "posix-rename@openssh.com" not in session.extensions:
            report["warnings"].append("the server does not offer posix-rename@openssh.com; set posix_rename: false")
        directory = target.partner.directory
        with sftp_errors(target.name, "checking the directory", directory):
            attrs = session.sftp.stat(directory)
        if not statmod.S_ISDIR(attrs.st_mode or 0):
            raise ConfigError(f"directory {directory} is not a folder on the server")
        report.update(directory=directory, entries=len(listing(session, directory)), ok=True)
    finally:
        session.close()
    return report


@app.command("host-key")
def host_key(
    host: Annotated[str, typer.Option("--host", help="Server host.")],
    port: Annotated[int, typer.Option("--port", help="SSH port.")] = 22,
    as_json: JsonOption = False,
) -> None:
    """Show the host key a server offers, to confirm with the partner before pinning it."""
    from shared.destinations.sftp.connect import scan_host_key
    from shared.destinations.sftp.hostkeys import describe_key, known_hosts_line

    with exit_on_error(1):
        kind, blob = scan_host_key(host, port)
    import base64

    offered, line = describe_key(kind, base64.b64decode(blob)), known_hosts_line(host, port, kind, blob)
    if as_json:
        print_json({"host": host, "port": port, "offered": offered, "known_hosts_line": line, "trusted": False})
        return
    print_line(f"offered:          {offered}")
    print_line(f"known_hosts line: {line}")
    print_line("NOT trusted yet: confirm the fingerprint with the partner over another channel, then pin it.")


@partner_command
def ls(
    target: Target,
    path: Annotated[str, typer.Argument(help="Folder, relative to the partner directory.")] = "",
    long: Annotated[bool, typer.Option("-l", "--long", help="A table: mode, size, modification time.")] = False,
    as_json: JsonOption = False,
) -> None:
    """List a folder of the partner directory."""
    from shared.destinations.sftp.session import open_session

    folder = inside(target, path)
    session = open_session(target.name, target.partner)
    try:
        entries = [entry(attrs) for attrs in listing_named(session, target, folder, path)]
    finally:
        session.close()
    if as_json:
        print_json({"path": folder, "items": entries})
        return
    names = [e["name"] + ("/" if e["type"] == "folder" else "") for e in entries]
    if not long:
        for name in names:
            print_line(name)
        return
    rows = [[e["mode"], e["size"], e["modified"], name] for e, name in zip(entries, names, strict=True)]
    print_table(("MODE", "SIZE", "MODIFIED", "NAME"), rows, right={"SIZE"})


@partner_command
def tree(
    target: Target,
    path: Annotated[str, typer.Argument(help="Folder, relative to the partner directory.")] = "",
    depth: Annotated[int, typer.Option("--depth", help="Levels to show.")] = 3,
    as_json: JsonOption = False,
) -> None:
    """Show the folder tree below a folder, with file sizes."""
    from shared.destinations.sftp.session import open_session

    folder = inside(target, path)
    session = open_session(target.name, target.partner)

    def walk(current: str, level: int) -> list[dict[str, Any]]:
        items = []
        for attrs in listing_named(session, target, current, path if level == 1 else ""):
            item = entry(attrs)
            if item["type"] == "folder" and level < depth:
                item["items"] = walk(posixpath.join(current, attrs.filename), level + 1)
            items.append(item)
        return items

    try:
        items = walk(folder, 1)
    finally:
        session.close()
    if as_json:
        print_json({"path": folder, "items": items})
        return
    print_line(folder)
    _draw(items, "")


def _draw(items: list[dict[str, Any]], prefix: str) -> None:
    for i, item in enumerate(items):
        last = i == len(items) - 1
        is_dir = item["type"] == "folder"
        label = item["name"] + ("/" if is_dir else f"  ({item['size']:,} bytes)")
        print_line(f"{prefix}{'└── ' if last else '├── '}{label}")
        _draw(item.get("items", []), prefix + ("    " if last else "│   "))


@partner_command
def upload(
    target: Target,
    gcs_uri: Annotated[str, typer.Option("--gcs-uri", help="gs://BUCKET/OBJECT to send.")],
    remote_file: Annotated[str, typer.Option("--remote-file", help="Path relative to the partner directory.")],
    as_json: JsonOption = False,
) -> None:
    """Stream one GCS object to the server (temp name + atomic rename; skipped when identical)."""
    from shared.delivery.operation import PREFETCH_BLOCKS
    from shared.gcp import gcs
    from shared.gcp.reader import ObjectReader

    if not gcs_uri.startswith("gs://") or "/" not in gcs_uri[5:]:
        raise ConfigError(f"--gcs-uri {gcs_uri!r} is not gs://BUCKET/OBJECT")
    bucket, name = gcs_uri[5:].split("/", 1)
    inside(target, remote_file)
    info = gcs.stat(bucket, name)
    if info is None:
        raise ConfigError(f"{gcs_uri} does not exist")
    started = time.monotonic()
    source = ObjectReader(info, prefetch=PREFETCH_BLOCKS)
    with _destination(target) as destination:
        try:
            result = destination.put(remote_file, source, info.size, sha1=info.metadata.get("sha1"))
        finally:
            source.close()
        elapsed = time.monotonic() - started
        remote = destination.remote_path(result.path)
    if as_json:
        print_json(
            {"status": result.status, "path": remote, "size": result.size, "sha1": result.sha1, "seconds": elapsed}
        )
        return
    rate = f", {info.size / 1e6 / elapsed:.1f} MB/s" if elapsed > 0 and result.status != "unchanged" else ""
    print_line(f"{result.status}: {remote} ({result.size:,} bytes, sha1 {result.sha1}{rate})")


@partner_command
def get(
    target: Target,
    path: Annotated[str, typer.Argument(help="The file, relative to (or inside) the partner directory.")],
    to: Annotated[Path, typer.Argument(help="Local file, or a folder to put it in (default: here).")] = HERE,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing local file.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Download one file: written under a temporary name, renamed into place once its size is the
    one the server lists (an SFTP server lists no hash; the SHA-1 of the bytes read is printed)."""
    from offsite.cli.browse import show_fetched
    from shared.restore.fetch import fetch_file

    full = inside(target, path)
    relative = posixpath.relpath(full, posixpath.normpath(target.partner.directory))
    with _destination(target) as destination:
        fetched = fetch_file(destination, relative, to, force=force)
    show_fetched(fetched, f"{target.name}:{full}", as_json=as_json)


@partner_command
def rm(
    target: Target,
    path: Annotated[str, typer.Argument(help="File or folder, relative to (or inside) the partner directory.")],
    recursive: Annotated[bool, typer.Option("-r", "--recursive", help="Delete a folder and everything in it.")] = False,
    force: Annotated[bool, typer.Option("-f", "--force", help="Do not ask for confirmation.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete a file, or a folder with -r. Never outside the partner directory."""
    from shared.destinations.sftp.connect import sftp_errors
    from shared.destinations.sftp.session import open_session

    full = inside(target, path)
    if full == posixpath.normpath(target.partner.directory):
        raise ConfigError("refusing to delete the partner directory itself; use `offsite sftp clear` to empty it")
    session = open_session(target.name, target.partner)
    try:
        full = resolved_inside(session, target, full)
        with sftp_errors(target.name, "stat", full):
            attrs = session.sftp.lstat(full)
        is_dir = statmod.S_ISDIR(attrs.st_mode or 0)
        if is_dir and not recursive:
            raise ConfigError(f"{full} is a folder; use -r to delete it with its contents")
        what = f"folder {full} and everything in it" if is_dir else f"file {full}"
        if not force and not typer.confirm(f"delete {what}?", default=False, err=as_json):
            typer.echo("nothing deleted", err=as_json)
            raise typer.Exit(1)
        _report_deleted(list(remove_tree(session, full)), "", as_json)
    finally:
        session.close()


def _report_deleted(paths: list[str], where: str, as_json: bool) -> None:
    """What rm and clear print: every deleted path (``--json``), or how many."""
    if as_json:
        print_json({"deleted": paths, "count": len(paths)})
    else:
        typer.echo(f"deleted {len(paths)} item(s){where}")


@partner_command
def clear(
    target: Target,
    force: Annotated[bool, typer.Option("-f", "--force", help="Do not ask for confirmation.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete everything inside the partner directory (the directory itself stays)."""
    from shared.destinations.sftp.session import open_session

    root = posixpath.normpath(target.partner.directory)
    if root == "/":
        raise ConfigError("refusing to clear '/': the partner directory must be a real folder")
    session = open_session(target.name, target.partner)
    try:
        entries = listing(session, root)
        if not entries and not as_json:
            typer.echo(f"{root} is already empty")
            return
        asked = f"delete all {len(entries)} entries in {root}?"
        if entries and not force and not typer.confirm(asked, default=False, err=as_json):
            typer.echo("nothing deleted", err=as_json)
            raise typer.Exit(1)
        deleted = [path for e in entries for path in remove_tree(session, posixpath.join(root, e.filename))]
        _report_deleted(deleted, f" in {root}", as_json)
    finally:
        session.close()
