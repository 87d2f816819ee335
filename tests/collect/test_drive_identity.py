"""Collect into Drive: each copy carries the partner file's identity (partner, path, size,
mtime) in its appProperties, and a rerun that lost every state record finds the copy by them
and uploads nothing (the local Drive server's request counts show it)."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import requests

from shared.collect.selection import identity_of
from shared.collect.state import prefix
from shared.config import Config
from shared.destinations.drive.destination import DriveDestination
from shared.destinations.drive.labels import MAX_PROPERTY_BYTES
from shared.destinations.factory import opened
from shared.gcp import gcs
from tests.collect.conftest import Collect


def uploads_started(collect: Collect) -> int:
    counts = requests.get(f"{collect.stack.drive_url}/_admin/requests", timeout=10).json()["counts"]
    return int(counts.get("upload.start", 0))


def wipe_state(config: Config, job: str) -> None:
    for info in gcs.list_prefix(config.state_bucket_name, prefix(job)):
        gcs.delete(config.state_bucket_name, info.name)
    assert gcs.list_prefix(config.state_bucket_name, prefix(job)) == []


def drive_items(config: Config, folder: str) -> dict[str, dict[str, Any]]:
    """name → the Drive file resource (id, size, md5Checksum, appProperties, …) of ``folder``'s files."""
    with opened("drive:reports", config) as dest:
        assert isinstance(dest, DriveDestination)
        folder_id = dest.folders.lookup(folder)
        assert folder_id is not None
        return {str(i["name"]): i for i in dest.folders.children(folder_id)}


def test_a_rerun_without_state_records_finds_the_labelled_copies_and_uploads_nothing(collect: Collect) -> None:
    config = collect.config({"destinations": ["drive:reports"]})
    long_name = "x" * 90 + ".csv"  # the partner path is over the 124 bytes of an appProperty
    data = {"a.csv": os.urandom(200_000), long_name: b"id,total\n1,2\n"}
    for name, body in data.items():
        collect.write(name, body)
    assert collect.run(config) == ["collected", "collected"]
    first = drive_items(config, collect.folder)
    assert sorted(first) == sorted(data)
    for name, item in first.items():
        st = (collect.partner_dir / name).stat()
        identity = identity_of("partner", config.collect_job(collect.name), name, st.st_size, int(st.st_mtime))  # type: ignore[arg-type]
        props = item["appProperties"]
        assert props["offsite_partner"] == "partner"
        assert (props["offsite_size"], props["offsite_mtime"]) == (str(st.st_size), str(int(st.st_mtime)))
        if len(f"offsite_path{identity.path}".encode()) <= MAX_PROPERTY_BYTES:
            assert props["offsite_path"] == identity.path == f"{collect.partner_dir}/{name}"
        else:
            assert props["offsite_path"].startswith("sha256:") and name == long_name

    wipe_state(config, collect.name)
    started = uploads_started(collect)
    assert collect.run(config) == ["collected", "collected"]  # taken again: collect remembers nothing …
    assert uploads_started(collect) == started  # … but finds both copies by their labels
    again = drive_items(config, collect.folder)
    assert {n: (i["id"], i["md5Checksum"]) for n, i in again.items()} == {
        n: (i["id"], i["md5Checksum"]) for n, i in first.items()
    }
    assert collect.run(config) == []  # and has its records back


def test_a_new_version_with_the_same_bytes_is_relabelled_not_copied_again(collect: Collect) -> None:
    config = collect.config({"destinations": ["drive:reports"]})
    path = collect.write("daily.csv", b"same bytes\n", age_s=7200)
    assert collect.run(config) == ["collected"]
    [old] = drive_items(config, collect.folder).values()
    stamp = int(path.stat().st_mtime) + 60  # touched by the partner: another version, same bytes
    os.utime(path, (stamp, stamp))
    wipe_state(config, collect.name)
    assert collect.run(config) == ["collected"]
    [new] = drive_items(config, collect.folder).values()
    assert (new["id"], new["md5Checksum"]) == (old["id"], old["md5Checksum"])
    assert new["appProperties"]["offsite_mtime"] == str(stamp) != old["appProperties"]["offsite_mtime"]


def test_a_labelled_copy_with_other_bytes_is_not_trusted(collect: Collect) -> None:
    """Same identity labels and size, other bytes (changed in Drive): the rerun uploads the source's."""
    config = collect.config({"destinations": ["drive:reports"]})
    data = os.urandom(100_000)
    collect.write("orders.csv", data)
    assert collect.run(config) == ["collected"]
    [item] = drive_items(config, collect.folder).values()
    other = bytes(b ^ 0xFF for b in data)  # same size
    with opened("drive:reports", config) as dest:
        assert isinstance(dest, DriveDestination)
        url = f"{dest.http.upload}/files/{item['id']}"
        with dest.http.call("PATCH", url, what="tamper", params={"uploadType": "media"}, data=other):
            pass
    wipe_state(config, collect.name)
    started = uploads_started(collect)
    assert collect.run(config) == ["collected"]
    assert uploads_started(collect) == started + 1
    [again] = drive_items(config, collect.folder).values()
    assert again["id"] == item["id"] and again["md5Checksum"] == item["md5Checksum"] == hashlib.md5(data).hexdigest()
