"""One conformance suite, every backend (rclone's fstests).

Each backend has a module ``backend_<name>.py`` here with a generator
``destination(request) -> Iterator[Destination]`` that yields a fresh, empty destination
rooted at a unique folder and cleans up afterwards. Adding a backend = adding its module and
its name to BACKENDS; every test in test_conformance.py then runs against it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import pytest

from shared.destinations.base import Destination

BACKENDS = ["memory", "sftp_openssh", "sftp_paramiko", "sftp_asyncssh", "box", "drive"]


@pytest.fixture(params=BACKENDS)
def destination(request: pytest.FixtureRequest) -> Iterator[Destination]:
    module = importlib.import_module(f"tests.destinations.backend_{request.param}")
    yield from module.destination(request)
