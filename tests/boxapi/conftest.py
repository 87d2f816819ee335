"""Fixtures for the local Box API server tests: one server per xdist worker, cleaned per test.

The server is judged by the official box-sdk-gen client; raw ``requests`` calls appear
only where a test needs to look at what the SDK hides (headers, bodies of errors).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import socket
import uuid
from collections.abc import Iterator

import pytest
from box_sdk_gen import BoxClient
from box_sdk_gen.managers.folders import CreateFolderParent
from box_sdk_gen.managers.uploads import UploadFileAttributes, UploadFileAttributesParentField
from box_sdk_gen.schemas.file_full import FileFull
from box_sdk_gen.schemas.folder_full import FolderFull

from devstack.boxapi import BoxApiServer

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail fast if anything (an SDK default base URL, say) tries to reach the real Box."""
    real = socket.getaddrinfo

    def guarded(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name not in _LOOPBACK:
            raise OSError(f"tests/boxapi only talk to loopback, not {name!r}")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


@pytest.fixture(scope="session")
def box_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BoxApiServer]:
    with BoxApiServer(tmp_path_factory.mktemp("boxapi") / "data") as server:
        yield server


@pytest.fixture
def box(box_server: BoxApiServer) -> Iterator[BoxApiServer]:
    """The worker's server, with no faults left and default settings after each test."""
    settings = box_server.configure()
    yield box_server
    box_server.clear_faults()
    box_server.configure(**settings)


@pytest.fixture
def client(box: BoxApiServer) -> BoxClient:
    return box.client()


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def folder(client: BoxClient) -> FolderFull:
    """A fresh folder under the root for one test."""
    return client.folders.create_folder(unique("folder"), CreateFolderParent(id="0"))


def sha1_hex(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def upload(client: BoxClient, folder_id: str, name: str, data: bytes, **kwargs) -> FileFull:
    attributes = UploadFileAttributes(name=name, parent=UploadFileAttributesParentField(id=folder_id))
    return client.uploads.upload_file(attributes, io.BytesIO(data), **kwargs).entries[0]


# Big enough for an upload session (Box's minimum is 20,000,000 bytes): three parts of
# 8 MiB, the last one short.
BIG_SIZE = 21 * 1024 * 1024 + 12345


@pytest.fixture(scope="session")
def payload() -> bytes:
    return os.urandom(BIG_SIZE)


def digest(data: bytes) -> str:
    """RFC 3230 ``Digest`` value Box wants: ``sha=<base64 SHA-1>``."""
    return "sha=" + base64.b64encode(hashlib.sha1(data).digest()).decode()


def chunks(data: bytes, part_size: int) -> list[tuple[int, bytes]]:
    return [(offset, data[offset : offset + part_size]) for offset in range(0, len(data), part_size)]
