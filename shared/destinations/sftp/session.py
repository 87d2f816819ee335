"""Opening an SFTP session the way the partner's ``ssh_client`` setting chooses (docs/sftp.md)."""

from __future__ import annotations

from shared.config import SftpPartner
from shared.destinations.sftp.connect import SftpSession, open_paramiko_session
from shared.destinations.sftp.openssh import open_openssh_session, uses_openssh


def open_session(name: str, partner: SftpPartner) -> SftpSession:
    """Through OpenSSH's ``ssh`` when it is chosen (or, on ``auto``, runs here), else paramiko."""
    if uses_openssh(partner):
        return open_openssh_session(name, partner)
    return open_paramiko_session(name, partner)
