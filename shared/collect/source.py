"""A partner's SFTP server as a source: list a directory, stream a file, move or delete it.

It reuses the SFTP backend's connection code (shared/destinations/sftp): the host key is
verified before authentication (known_hosts or a fingerprint, never auto-accepted), key or
password auth, the per-partner session pool and its ``max_sessions`` limit, and the pipelined
reader. Errors are the backend's: connection trouble is TransientError, permission denied
and a missing path PermanentError naming the path.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, cast

import paramiko
from paramiko.message import Message
from paramiko.sftp import CMD_CLOSE, CMD_HANDLE, CMD_NAME, CMD_OPENDIR, CMD_READDIR, SFTPError

from shared import log
from shared.collect.messages import printable
from shared.config import SftpPartner
from shared.destinations.sftp.connect import SftpSession, sftp_errors
from shared.destinations.sftp.files import is_file, is_folder, mkdirs, publish, remove_if_there
from shared.destinations.sftp.pool import SessionPool, pool_for
from shared.destinations.sftp.reader import PipelinedReader

logger = log.get_logger(__name__)


@dataclass(frozen=True)
class ListedFile:
    """A regular file of the collected directory as the server lists it."""

    name: str  # relative to the directory: "a.csv", or "sub/a.csv" when collected recursively
    size: int
    mtime: int  # seconds since the epoch, as SFTP reports it


class _Requests(Protocol):
    """paramiko's private request call (status → exception mapping included); not in its stubs."""

    def _request(self, t: int, *args: Any) -> tuple[int, Message]: ...


class _Unpacks(Protocol):
    def _unpack(self, msg: Message) -> None: ...


def _name(raw: bytes) -> str:
    """A name the server sent; bytes that are not UTF-8 kept as surrogates (``surrogateescape``)."""
    return raw.decode("utf-8", "surrogateescape")


def list_folder(sftp: paramiko.SFTPClient, path: str) -> list[paramiko.SFTPAttributes]:
    """paramiko's ``listdir_attr``, except that one name that is not UTF-8 does not fail the
    whole listing (paramiko decodes every name strictly): it is listed with its bytes kept, and
    the selection reports it as unsupported. ``path`` may hold such bytes too (a subfolder's)."""
    client = cast(_Requests, sftp)
    kind, msg = client._request(CMD_OPENDIR, path.encode("utf-8", "surrogateescape"))
    if kind != CMD_HANDLE:
        raise SFTPError("Expected handle")
    handle = msg.get_binary()
    entries: list[paramiko.SFTPAttributes] = []
    while True:
        try:
            kind, msg = client._request(CMD_READDIR, handle)
        except EOFError:  # the end of the folder
            break
        if kind != CMD_NAME:
            raise SFTPError("Expected name response")
        for _ in range(msg.get_int()):
            name, _longname = _name(msg.get_string()), msg.get_string()
            attrs = paramiko.SFTPAttributes()
            cast(_Unpacks, attrs)._unpack(msg)
            attrs.filename = name
            if name not in (".", ".."):
                entries.append(attrs)
    client._request(CMD_CLOSE, handle)
    return entries


class SftpSource:
    """The collected directory of one partner."""

    def __init__(self, partner_name: str, partner: SftpPartner, directory: str) -> None:
        self.partner_name = partner_name
        self.partner = partner
        self.directory = directory
        self.pool: SessionPool = pool_for(f"collect-{partner_name}", partner)

    def path_of(self, name: str) -> str:
        return posixpath.join(self.directory, name)

    @contextmanager
    def _session(self, what: str, path: str) -> Iterator[SftpSession]:
        with self.pool.session() as session, sftp_errors(self.partner_name, what, path):
            yield session

    def list(self, *, recursive: bool = False, max_depth: int = 0) -> list[ListedFile]:
        """Regular files in the directory, names relative to it. ``recursive``: also in its
        subfolders down to ``max_depth`` levels (``sub/a.csv`` is one level down); folders deeper
        are not entered and are logged. Symlinks (to files or folders) are never followed or taken.
        A name that is not UTF-8 is listed with its bytes kept as surrogates (:func:`list_folder`)."""
        files: list[ListedFile] = []
        pending: list[tuple[str, int]] = [("", 0)]
        too_deep: list[str] = []
        with self._session("listing", self.directory) as session:
            while pending:
                relative, depth = pending.pop()
                for e in list_folder(session.sftp, self.path_of(relative) if relative else self.directory):
                    name = f"{relative}/{e.filename}" if relative else e.filename
                    if is_file(e):
                        files.append(ListedFile(name, int(e.st_size or 0), int(e.st_mtime or 0)))
                    elif recursive and is_folder(e):
                        if depth < max_depth:
                            pending.append((name, depth + 1))
                        else:
                            too_deep.append(name)
        if too_deep:
            logger.warning(
                "folders below max_depth not collected",
                directory=self.directory,
                max_depth=max_depth,
                folders=[printable(f) for f in sorted(too_deep)[:20]],
                count=len(too_deep),
            )
        return sorted(files, key=lambda f: f.name)

    def stat(self, name: str) -> ListedFile | None:
        """The file now, or None when it is gone."""
        path = self.path_of(name)
        with self._session("stat", path) as session:
            try:
                attrs = session.sftp.lstat(path)
            except FileNotFoundError:
                return None
        if not is_file(attrs):
            return None
        return ListedFile(name, int(attrs.st_size or 0), int(attrs.st_mtime or 0))

    def open(self, name: str) -> PipelinedReader:
        """The file's bytes, READ requests pipelined; closing the stream frees the session."""
        session = self.pool.acquire()
        try:
            return PipelinedReader(
                session, self.path_of(name), on_close=lambda healthy: self.pool.release(session, healthy)
            )
        except BaseException:
            self.pool.release(session, False)
            raise

    def move(self, name: str, folder: str) -> str:
        """Move the file to ``folder``/``name`` (folders created if missing); an existing file there is replaced."""
        source, target = self.path_of(name), posixpath.join(folder, name)
        with self._session("moving", source) as session:
            mkdirs(session, posixpath.dirname(target))  # a file of a subfolder keeps its relative path
            atomic = "posix-rename@openssh.com" in session.extensions and self.partner.posix_rename
            publish(session, source, target, posix_rename=atomic, replace=True)
        return target

    def delete(self, name: str) -> None:
        """Remove the file; one already gone is fine."""
        path = self.path_of(name)
        with self._session("deleting", path) as session:
            remove_if_there(session, path)

    def close(self) -> None:
        """Idle sessions stay in the process's pool (warm instances reuse them)."""
