"""What ``offsite sftp`` does with paths on a partner's server: keep them inside the partner
directory (through symbolic links too), list a folder, describe an entry, delete a tree."""

from __future__ import annotations

import posixpath
import stat as statmod
import time
from collections.abc import Iterator
from typing import Any

from offsite.cli.sftp_target import Target
from shared.errors import ConfigError, PermanentError


def inside(target: Target, path: str) -> str:
    """``path`` (relative to the partner directory, or absolute inside it) as an absolute path;
    anything outside the directory is refused."""
    root = posixpath.normpath(target.partner.directory)
    full = posixpath.normpath(path if path.startswith("/") else posixpath.join(root, path))
    if full != root and not full.startswith(root.rstrip("/") + "/"):
        raise ConfigError(f"{path!r} is outside the partner directory {root}; refusing")
    return full


def resolved_inside(session: Any, target: Target, full: str) -> str:
    """``full`` with the symbolic links of its folders resolved by the server (SFTP realpath); its
    last component stays as it is, so a link there is removed, not followed. Refused unless it is
    inside the resolved partner directory: a link inside it may point anywhere."""
    from shared.destinations.sftp.connect import sftp_errors

    parent, name = posixpath.split(full)
    with sftp_errors(target.name, "resolving", full):
        root = session.sftp.normalize(target.partner.directory)
        real = posixpath.join(session.sftp.normalize(parent), name)
    if not real.startswith(root.rstrip("/") + "/"):
        raise ConfigError(
            f"{full!r} is {real} on the server (through a symbolic link), outside the partner directory {root}; refusing"
        )
    return real


def listing(session: Any, folder: str) -> list[Any]:
    from shared.destinations.sftp.connect import sftp_errors

    with sftp_errors(session.partner, "listing", folder):
        return sorted(session.sftp.listdir_attr(folder), key=lambda a: a.filename)


def listing_named(session: Any, target: Target, folder: str, named: str) -> list[Any]:
    """``listing`` of the folder the user named as ``named``. A folder that does not exist but
    bears a partner's name was meant as the partner (``box ls`` and ``drive ls`` name theirs
    with ``--destination``): the error says how to pick one."""
    try:
        return listing(session, folder)
    except PermanentError as exc:
        name = named.strip("/")
        if "no such file" not in str(exc) or name not in target.configured:
            raise
        raise PermanentError(f"{exc} ({name!r} is a partner: to list its directory, use --partner {name})") from None


def modified(attrs: Any) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(attrs.st_mtime or 0))


def entry(attrs: Any) -> dict[str, Any]:
    """One listing entry as ``--json`` prints it."""
    is_dir = statmod.S_ISDIR(attrs.st_mode or 0)
    return {
        "name": attrs.filename,
        "type": "folder" if is_dir else "file",
        "size": attrs.st_size or 0,
        "mode": statmod.filemode(attrs.st_mode or 0),
        "modified": modified(attrs),
    }


def remove_tree(session: Any, path: str) -> Iterator[str]:
    """Delete ``path`` (file or folder, recursively); yields each removed path."""
    from shared.destinations.sftp.connect import sftp_errors

    with sftp_errors(session.partner, "deleting", path):
        attrs = session.sftp.lstat(path)
        if statmod.S_ISDIR(attrs.st_mode or 0):
            for child in listing(session, path):
                yield from remove_tree(session, posixpath.join(path, child.filename))
            session.sftp.rmdir(path)
        else:
            session.sftp.remove(path)
    yield path
