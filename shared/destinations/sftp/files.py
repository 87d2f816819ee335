"""File and folder steps on an SFTP server, shared by the SFTP destination and the collector.

Each takes an open :class:`SftpSession` (its ``partner`` names the server in errors) and an
absolute server path; paramiko's exceptions become offsite's kinds through ``sftp_errors``.
"""

from __future__ import annotations

import contextlib
import posixpath
import stat as statmod
import time
from collections.abc import Iterator
from typing import Any

from paramiko.sftp import CMD_EXTENDED, SFTP_OK, SFTP_PERMISSION_DENIED

from shared.destinations.sftp.connect import SFTP_OP_UNSUPPORTED, SftpSession, raw_request, sftp_errors, status_of
from shared.destinations.sftp.stream import OpenRefused, open_for_write
from shared.errors import PermanentError, TransientError
from shared.log import get_logger

log = get_logger(__name__)
STALE_PROBE_S = 3.0  # a .partial whose size and mtime do not move for this long is a leftover


def attrs_of(session: SftpSession, full: str, *, follow_links: bool = True) -> Any:
    """The attributes of ``full`` (of a symlink's target unless ``follow_links`` is off), or None
    when nothing is there."""
    with sftp_errors(session.partner, "stat", full):
        try:
            return session.sftp.stat(full) if follow_links else session.sftp.lstat(full)
        except FileNotFoundError:
            return None


def is_folder(attrs: Any) -> bool:
    return attrs is not None and statmod.S_ISDIR(attrs.st_mode or 0)


def is_file(attrs: Any) -> bool:
    return attrs is not None and statmod.S_ISREG(attrs.st_mode or 0)


def walk(session: SftpSession, folder: str, rel: str) -> Iterator[tuple[str, int, int]]:
    """(path relative to the walk's start, size, mtime in whole seconds) of every regular file
    under ``folder``."""
    with sftp_errors(session.partner, "listing", folder):
        try:
            entries = session.sftp.listdir_attr(folder)
        except FileNotFoundError:
            return
    for entry in entries:
        child = posixpath.join(rel, entry.filename) if rel else entry.filename
        mode = entry.st_mode or 0
        if statmod.S_ISDIR(mode):
            yield from walk(session, posixpath.join(folder, entry.filename), child)
        elif statmod.S_ISREG(mode):  # .partial leftovers included: verify names them
            yield child, int(entry.st_size or 0), int(entry.st_mtime or 0)


def subfolders(session: SftpSession, folder: str) -> list[str]:
    """The sorted names of the folders directly in ``folder`` (one listdir); [] when it is missing."""
    with sftp_errors(session.partner, "listing", folder):
        try:
            entries = session.sftp.listdir_attr(folder)
        except FileNotFoundError:
            return []
    return sorted(e.filename for e in entries if statmod.S_ISDIR(e.st_mode or 0))


def mkdirs(session: SftpSession, full: str) -> None:
    """Create ``full`` and missing parents; another writer creating them at the same time is fine."""
    missing: list[str] = []
    probe = full
    while probe not in ("/", ""):
        attrs = attrs_of(session, probe)
        if attrs is not None:
            if not is_folder(attrs):
                raise PermanentError(f"sftp:{session.partner}: cannot create folder {full}: {probe} is a file")
            break
        missing.append(probe)
        probe = posixpath.dirname(probe)
    for folder in reversed(missing):
        with sftp_errors(session.partner, "creating folder", folder):
            try:
                session.sftp.mkdir(folder)
            except OSError:
                if is_folder(attrs_of(session, folder)):
                    continue  # created by a concurrent writer
                raise


def remove_quietly(session: SftpSession, path: str) -> None:
    with contextlib.suppress(Exception):  # tidying up; a leftover partial is taken over next time
        session.sftp.remove(path)


def remove_if_there(session: SftpSession, path: str) -> None:
    """Remove the file ``path``; one already gone is fine, any other failure raises."""
    with sftp_errors(session.partner, "deleting", path):
        try:
            session.sftp.remove(path)
        except FileNotFoundError:
            pass


def claim_partial(session: SftpSession, partial: str) -> bytes:
    """A handle on an exclusive, empty ``partial``; a leftover of a dead attempt (its size and
    mtime still for ``STALE_PROBE_S``) is removed first, a growing one is another delivery's."""
    where = f"sftp:{session.partner}"
    for _ in range(3):
        try:
            return open_for_write(session, partial, create=True, exclusive=True)
        except OpenRefused as refused:
            before = attrs_of(session, partial)
            if before is None:
                raise TransientError(f"{where}: cannot create {partial} ({refused})") from None
        time.sleep(STALE_PROBE_S)
        after = attrs_of(session, partial)
        if after is not None and (after.st_size, after.st_mtime) != (before.st_size, before.st_mtime):
            raise TransientError(f"{where}: another delivery is writing {partial}; retrying later")
        log.info("taking over a leftover partial file", remote_path=partial, size=before.st_size)
        remove_quietly(session, partial)
    raise TransientError(f"{where}: could not claim {partial}; retrying later")


def publish(session: SftpSession, partial: str, final: str, *, posix_rename: bool, replace: bool) -> None:
    """Rename ``partial`` to ``final``: atomically with ``posix-rename@openssh.com``, or (with
    ``posix_rename`` off) remove + rename, which leaves no file at ``final`` for a moment."""
    where = f"sftp:{session.partner}"
    with sftp_errors(session.partner, "publishing", final):
        if posix_rename:
            code, text = status_of(*raw_request(session.sftp, CMD_EXTENDED, "posix-rename@openssh.com", partial, final))
            if code == SFTP_OK:
                return
            if code == SFTP_OP_UNSUPPORTED:
                raise PermanentError(
                    f"{where}: the server does not support posix-rename@openssh.com; "
                    f"set destinations.sftp.{session.partner}.posix_rename: false"
                )
            if code == SFTP_PERMISSION_DENIED:
                raise PermanentError(f"{where}: permission denied renaming {partial} to {final}")
            raise TransientError(f"{where}: renaming {partial} to {final} failed (SFTP status {code}: {text})")
        if replace:
            remove_if_there(session, final)
        session.sftp.rename(partial, final)
