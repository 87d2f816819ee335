"""The SFTP backend of the conformance suite on OpenSSH's sshd, with paramiko doing the SSH work
(``ssh_client: paramiko``): the path a function takes where no ``ssh`` binary runs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.destinations.sftp.destination import SftpDestination
from tests.destinations import backend_sftp_openssh


def destination(request: pytest.FixtureRequest) -> Iterator[SftpDestination]:
    yield from backend_sftp_openssh.destination(request, ssh_client="paramiko")
