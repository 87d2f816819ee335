"""Removing a folder tree on an SFTP server (``SftpDestination.delete_folder``).

SFTP has no recursive remove: files (and symlinks, never followed) are removed one by one,
then the folders bottom-up. Something vanishing meanwhile (a concurrent prune) is fine.
"""

from __future__ import annotations

import posixpath

from shared.destinations.sftp.connect import SftpSession, sftp_errors
from shared.destinations.sftp.files import is_folder


def remove_tree(session: SftpSession, partner: str, folder: str, *, recursive: bool) -> bool:
    """Remove ``folder`` (an absolute server path) and, when ``recursive``, everything under it.
    True when no folder is left there; False when ``recursive`` is off and it is not empty."""
    with sftp_errors(partner, "deleting folder", folder):
        try:
            top = session.sftp.lstat(folder)
        except FileNotFoundError:
            return True
        if not is_folder(top):
            return True  # a file of that name is not a folder: nothing to do here
        if not recursive and session.sftp.listdir(folder):
            return False
        _remove(session, folder)
    return True


def _remove(session: SftpSession, folder: str) -> None:
    try:
        entries = session.sftp.listdir_attr(folder)
    except FileNotFoundError:
        return
    for entry in entries:
        child = posixpath.join(folder, entry.filename)
        try:
            if is_folder(entry):
                _remove(session, child)
            else:
                session.sftp.remove(child)
        except FileNotFoundError:
            pass
    try:
        session.sftp.rmdir(folder)
    except FileNotFoundError:
        pass
