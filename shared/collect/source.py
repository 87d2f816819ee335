"""A partner's SFTP server as a source: list a directory, stream a file, move or delete it.

It reuses the SFTP backend's connection code (shared/destinations/sftp): the host key is
verified before authentication (known_hosts or a fingerprint, never auto-accepted), key or
password auth, the per-partner session pool and its ``max_sessions`` limit, and the pipelined
reader. Errors are the backend's: connection trouble is TransientError, permission denied
and a missing path PermanentError naming the path.
"""

from __future__ import annotations

import posixpath
import stat as statmod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from shared.config import SftpPartner
from shared.destinations.sftp.connect import SftpSession, sftp_errors
from shared.destinations.sftp.pool import SessionPool, pool_for
from shared.destinations.sftp.stream import PipelinedReader


@dataclass(frozen=True)
class ListedFile:
    """A regular file of the collected directory as the server lists it."""

    name: str
    size: int
    mtime: int  # seconds since the epoch, as SFTP reports it


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

    def list(self) -> list[ListedFile]:
        """Regular files directly in the directory (not recursive; links and folders are not taken)."""
        with self._session("listing", self.directory) as session:
            entries = session.sftp.listdir_attr(self.directory)
        files = [
            ListedFile(e.filename, int(e.st_size or 0), int(e.st_mtime or 0))
            for e in entries
            if statmod.S_ISREG(e.st_mode or 0)
        ]
        return sorted(files, key=lambda f: f.name)

    def stat(self, name: str) -> ListedFile | None:
        """The file now, or None when it is gone."""
        path = self.path_of(name)
        with self._session("stat", path) as session:
            try:
                attrs = session.sftp.lstat(path)
            except FileNotFoundError:
                return None
        if not statmod.S_ISREG(attrs.st_mode or 0):
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
        """Move the file into ``folder`` (created if missing); an existing file there is replaced."""
        source, target = self.path_of(name), posixpath.join(folder, name)
        with self._session("moving", source) as session:
            _mkdirs(session, folder)
            if "posix-rename@openssh.com" in session.extensions and self.partner.posix_rename:
                session.sftp.posix_rename(source, target)
            else:
                try:
                    session.sftp.remove(target)
                except FileNotFoundError:
                    pass
                session.sftp.rename(source, target)
        return target

    def delete(self, name: str) -> None:
        """Remove the file; one already gone is fine."""
        path = self.path_of(name)
        with self._session("deleting", path) as session:
            try:
                session.sftp.remove(path)
            except FileNotFoundError:
                pass

    def close(self) -> None:
        """Idle sessions stay in the process's pool (warm instances reuse them)."""


def _mkdirs(session: SftpSession, folder: str) -> None:
    missing: list[str] = []
    current = folder
    while current not in ("", "/"):
        try:
            session.sftp.lstat(current)
            break
        except FileNotFoundError:
            missing.append(current)
            current = posixpath.dirname(current)
    for path in reversed(missing):
        try:
            session.sftp.mkdir(path)
        except OSError:
            session.sftp.lstat(path)  # made by someone else meanwhile; anything else raises
