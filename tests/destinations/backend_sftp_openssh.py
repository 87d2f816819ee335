"""The SFTP backend of the conformance suite on OpenSSH: the stack's sshd (partner ``local``),
reached through OpenSSH's ``ssh`` (``ssh_client: openssh``; backend_sftp_paramiko: through paramiko).

Uses the worker's ``bare_stack`` (its sshd, login user, key and known_hosts); every test gets a
fresh directory under the stack's SFTP data directory, removed afterwards.
"""

from __future__ import annotations

import os
import pwd
import shutil
import uuid
from collections.abc import Iterator

import pytest

from shared.config import SftpPartner
from shared.destinations.sftp.destination import SftpDestination
from shared.secrets import Secret


def destination(request: pytest.FixtureRequest, ssh_client: str = "openssh") -> Iterator[SftpDestination]:
    stack = request.getfixturevalue("bare_stack")
    sftp = stack.sftp
    folder = sftp.directory / f"conformance-{uuid.uuid4().hex[:12]}"
    folder.mkdir()
    account = pwd.getpwnam(sftp.username)
    os.chown(folder, account.pw_uid, account.pw_gid)
    partner = SftpPartner(
        host=sftp.host,
        port=sftp.port,
        username=sftp.username,
        private_key=Secret(f"file:{sftp.key_path}"),
        known_hosts=Secret(f"file:{sftp.known_hosts_path}"),
        directory=str(folder),
        ssh_client=ssh_client,
    )
    dest = SftpDestination("conformance", partner)
    try:
        yield dest
    finally:
        dest.close()
        shutil.rmtree(folder, ignore_errors=True)
