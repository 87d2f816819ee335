"""devstack/wan.py: the WAN model is arithmetic we can check, and the proxy carries a real
box-sdk-gen chunked upload byte for byte (no timing assertions: what is timed is bench/box_bench.py)."""

from __future__ import annotations

import io
import os

import pytest
from box_sdk_gen import BoxClient, BoxDeveloperTokenAuth
from box_sdk_gen.networking.base_urls import BaseUrls
from box_sdk_gen.schemas.folder_full import FolderFull

from devstack.boxapi import BoxApiServer
from devstack.wan import Link, WanProfile, WanProxy
from tests.boxapi.conftest import sha1_hex


def test_link_serialises_chunks_then_adds_the_one_way_delay() -> None:
    link = Link(bytes_per_s=1000.0, delay_s=0.03)
    assert link.schedule(100, now=10.0) == pytest.approx(10.13)  # 0.1 s on the wire + 30 ms
    # The next chunk arrives while the first is still on the wire: it waits for the link.
    assert link.schedule(500, now=10.05) == pytest.approx(10.63)
    # An idle link starts at once.
    assert link.schedule(10, now=20.0) == pytest.approx(20.04)


def test_new_connection_waits_its_setup_round_trips() -> None:
    profile = WanProfile("t", rtt_s=0.1, bytes_per_s=1e6, setup_rtts=2)
    link = Link(profile.bytes_per_s, profile.rtt_s / 2, free_at=5.0 + profile.setup_rtts * profile.rtt_s)
    assert link.schedule(1000, now=5.0) == pytest.approx(5.0 + 0.2 + 0.001 + 0.05)


def test_chunked_upload_through_the_proxy_arrives_intact(box: BoxApiServer, folder: FolderFull) -> None:
    data = os.urandom(21_000_000)  # above Box's 20 MB chunked-upload minimum
    profile = WanProfile("test", rtt_s=0.002, bytes_per_s=2e9, setup_rtts=1)
    with WanProxy(box.port, profile) as wan:
        urls = BaseUrls(base_url=wan.url, upload_url=wan.url + "/api", oauth_2_url=wan.url + "/oauth2")
        client = BoxClient(auth=BoxDeveloperTokenAuth(token=box.token)).with_custom_base_urls(urls)
        uploaded = client.chunked_uploads.upload_big_file(io.BytesIO(data), "wan.bin", len(data), folder.id)
        downloaded = client.downloads.download_file(uploaded.id).read()
        assert uploaded.sha_1 == sha1_hex(data) and downloaded == data
        assert wan.bytes_up > len(data) and wan.bytes_down > len(data)  # payload plus HTTP
        assert wan.connections >= 1
