"""shared/gcp/reader.py against fake-gcs-server: the one reader every delivery and verify uses.

Pinned generation, ranged start, prefetching, SHA-1 on the way, CRC32C checked at the end, and a
dropped connection resumed with a Range request (a proxy cuts the download mid-way).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.state import StackInfo
from shared.errors import TransientError
from shared.gcp import gcs, reader
from shared.gcp.reader import BLOCK_BYTES, ObjectReader
from tests.sftp.tcp_proxy import CuttingProxy

SIZE = 3 * BLOCK_BYTES + 12_345


@pytest.fixture
def stored(bare_stack_env: StackInfo) -> tuple[gcs.ObjectInfo, bytes]:
    data = os.urandom(SIZE)
    info = gcs.write(bare_stack_env.bucket, f"reader-test/{uuid.uuid4().hex}/big.bin", data)
    return info, data


def read_all(reader: ObjectReader, step: int) -> bytes:
    parts = []
    while chunk := reader.read(step):
        assert len(chunk) <= step
        parts.append(chunk)
    return b"".join(parts)


@pytest.mark.parametrize("prefetch", [0, 3])
@pytest.mark.parametrize("step", [100_000, 8 * BLOCK_BYTES])
def test_reads_the_whole_object_and_hashes_it(stored: tuple[gcs.ObjectInfo, bytes], prefetch: int, step: int) -> None:
    info, data = stored
    with ObjectReader(info, prefetch=prefetch, hash_sha1=True) as reader:
        assert read_all(reader, step) == data
        assert reader.position == len(data)
        assert reader.sha1 == hashlib.sha1(data).hexdigest()
        assert reader.read(10) == b""


def test_without_hash_sha1_the_digest_is_refused_not_empty(stored: tuple[gcs.ObjectInfo, bytes]) -> None:
    info, data = stored
    with ObjectReader(info) as reader:
        assert reader.read() == data
        with pytest.raises(RuntimeError, match="hash_sha1"):
            _ = reader.sha1


@pytest.mark.parametrize("prefetch", [0, 2])
def test_starts_at_an_offset(stored: tuple[gcs.ObjectInfo, bytes], prefetch: int) -> None:
    info, data = stored
    start = BLOCK_BYTES + 7
    with ObjectReader(info, start=start, prefetch=prefetch) as reader:
        assert reader.position == start
        assert reader.read() == data[start:]
    with pytest.raises(ValueError, match="outside"):
        ObjectReader(info, start=len(data) + 1)


@pytest.mark.parametrize("prefetch", [0, 2])
def test_a_crc32c_difference_fails_the_read(stored: tuple[gcs.ObjectInfo, bytes], prefetch: int) -> None:
    info, _ = stored
    wrong = dataclasses.replace(info, crc32c="AAAAAA==")
    with ObjectReader(wrong, prefetch=prefetch) as reader, pytest.raises(TransientError, match="CRC32C"):
        read_all(reader, BLOCK_BYTES)


@pytest.fixture
def cutting_client(bare_stack_env: StackInfo) -> Iterator[tuple[object, CuttingProxy]]:
    """A storage client whose downloads are cut after 1 MiB per connection."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    port = int(bare_stack_env.gcs_url.rsplit(":", 1)[1].strip("/"))
    proxy = CuttingProxy(port, cut_reply_after_bytes=BLOCK_BYTES)
    client = storage.Client(
        project=bare_stack_env.project,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": f"http://127.0.0.1:{proxy.port}"},
    )
    try:
        yield client, proxy
    finally:
        proxy.close()


def test_a_dropped_download_is_resumed_with_a_range_request(
    stored: tuple[gcs.ObjectInfo, bytes], cutting_client: tuple[object, CuttingProxy]
) -> None:
    info, data = stored
    client, proxy = cutting_client
    with ObjectReader(
        info, client=client, hash_sha1=True
    ) as reader:  # 3 MiB +: cut at least twice at 1 MiB a connection
        assert reader.read() == data
        assert reader.sha1 == hashlib.sha1(data).hexdigest()
    assert proxy.cuts >= 2


def test_sha1_of_live_reads_again_when_the_generation_is_replaced_mid_read(
    stored: tuple[gcs.ObjectInfo, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upload function recording its SHA-1 as metadata gives the object a new generation on
    fake-gcs-server; a hash that pinned the old one (sealing a manifest, verify) reads the live one."""
    info, data = stored
    real_stat = gcs.stat
    pinned: list[int] = []

    def stat_then_patched(*args: Any, **kwargs: Any) -> gcs.ObjectInfo | None:
        found = real_stat(*args, **kwargs)
        if found is not None and found.name == info.name:
            pinned.append(found.generation)
            if len(pinned) == 1:  # another function patches the object between stat and read
                gcs.set_metadata(info.bucket, info.name, {"sha1": "recorded-by-another-function"})
        return found

    monkeypatch.setattr(gcs, "stat", stat_then_patched)
    assert reader.sha1_of_live(info.bucket, info.name) == hashlib.sha1(data).hexdigest()
    # first the pinned generation (gone by the read), then the check that the object is there
    # and the live generation, which was read whole
    assert len(pinned) == 3 and pinned[0] != pinned[2], pinned


def test_sha1_of_live_of_an_object_gone_is_object_missing(stored: tuple[gcs.ObjectInfo, bytes]) -> None:
    info, _ = stored
    gcs.delete(info.bucket, info.name)
    with pytest.raises(gcs.ObjectMissing, match="gone from GCS"):
        reader.sha1_of_live(info.bucket, info.name)
