"""offsite box ls / tree against the local Box API (the config's box destination)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from devstack.boxapi import BoxApiServer
from offsite.cli import app
from shared.config import BoxDestination as BoxSettings
from shared.destinations.box.destination import BoxDestination


def write_config(tmp_path: Path, box_server: BoxApiServer, root: str) -> Path:
    path = tmp_path / "offsite.yaml"
    box = {
        "root_folder_id": root,
        "base_url": box_server.base_url,
        "upload_url": box_server.upload_url,
        "oauth_url": box_server.oauth2_url,
        "auth": {"method": "developer_token", "developer_token": box_server.token},
    }
    path.write_text(
        yaml.safe_dump({"project": "offsite-cli-test", "bucket": "offsite-cli-test", "destinations": {"box": box}})
    )
    return path


def test_ls_and_tree(settings: BoxSettings, box_server: BoxApiServer, box_root: str, tmp_path: Path) -> None:
    box = BoxDestination(settings)
    for path, data in (
        ("GCP/bigquery/sales/orders/20250108/r1/a.parquet", b"aaaa"),
        ("GCP/bigquery/sales/orders/20250108/r1/b.parquet", b"bb"),
    ):
        box.put(path, io.BytesIO(data), len(data))
    config = str(write_config(tmp_path, box_server, box_root))
    runner = CliRunner()

    listed = runner.invoke(app, ["box", "ls", "GCP/bigquery/sales/orders/20250108/r1", "--config", config])
    assert listed.exit_code == 0, listed.output
    header, *lines = [line.split() for line in listed.stdout.splitlines()]  # plain text: not a terminal
    assert header == ["T", "ID", "SIZE", "SHA1", "NAME"] and "\x1b" not in listed.stdout
    assert [(cols[0], cols[-1], cols[2]) for cols in lines] == [("-", "a.parquet", "4"), ("-", "b.parquet", "2")]
    assert lines[0][3] == "70c881d4a26984ddce795f6f71817c9cf4480e79"  # sha1 of b"aaaa"
    assert "2 items in /GCP/bigquery/sales/orders/20250108/r1" in listed.stderr

    as_json = runner.invoke(app, ["box", "ls", "GCP/bigquery/sales/orders/20250108/r1", "--json", "--config", config])
    assert as_json.exit_code == 0, as_json.output
    listing = json.loads(as_json.stdout)
    assert listing["path"] == "/GCP/bigquery/sales/orders/20250108/r1"
    assert [(i["type"], i["name"], i["size"]) for i in listing["items"]] == [
        ("file", "a.parquet", 4),
        ("file", "b.parquet", 2),
    ]
    assert listing["items"][0]["sha1"] == lines[0][3] and listing["items"][0]["id"] == lines[0][1]
    folders = json.loads(runner.invoke(app, ["box", "ls", "GCP/bigquery", "--json", "--config", config]).stdout)
    assert [(i["type"], i["name"]) for i in folders["items"]] == [("folder", "sales")]

    drawn = runner.invoke(app, ["box", "tree", "GCP", "--depth", "2", "--config", config])
    assert drawn.exit_code == 0, drawn.output
    assert drawn.stdout.splitlines()[0] == "/GCP"
    assert "└── bigquery/" in drawn.stdout and "sales/" in drawn.stdout and "1 item" in drawn.stdout
    assert "orders/" not in drawn.stdout  # deeper than --depth

    full = runner.invoke(app, ["box", "tree", "--depth", "9", "--config", config])
    assert "a.parquet  4 B  sha1 70c881d4a26984ddce795f6f71817c9cf4480e79" in full.stdout

    nested = runner.invoke(app, ["box", "tree", "GCP", "--depth", "2", "--json", "--config", config])
    assert nested.exit_code == 0, nested.output
    doc = json.loads(nested.stdout)
    [bigquery] = doc["items"]
    assert doc["path"] == "/GCP" and bigquery["name"] == "bigquery" and bigquery["type"] == "folder"
    [sales] = bigquery["items"]
    assert sales["name"] == "sales" and sales["item_count"] == 1 and "items" not in sales  # deeper than --depth
    deep = json.loads(runner.invoke(app, ["box", "tree", "GCP", "--depth", "9", "--json", "--config", config]).stdout)
    [run] = deep["items"][0]["items"][0]["items"][0]["items"][0]["items"]
    assert [(f["name"], f["size"]) for f in run["items"]] == [("a.parquet", 4), ("b.parquet", 2)]

    missing = runner.invoke(app, ["box", "ls", "no/such/folder", "--config", config])
    assert missing.exit_code == 1 and "no folder 'no/such/folder'" in missing.output


def test_get_downloads_a_file_checked_and_never_leaves_a_damaged_one(
    settings: BoxSettings, box_server: BoxApiServer, box_root: str, tmp_path: Path
) -> None:
    """`box get` checks the bytes against Box's SHA-1: bit rot in Box's stored blob (same size)
    is refused, the local file already there stays as it was, and no partial file is left."""
    import hashlib
    import os

    from tests.box.support import api_get

    box = BoxDestination(settings)
    data = os.urandom(2 * 1024 * 1024 + 5)
    box.put("GCP/storage/files/ü b.bin", io.BytesIO(data), len(data))
    config = str(write_config(tmp_path, box_server, box_root))
    runner = CliRunner()
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    got = runner.invoke(app, ["box", "get", "GCP/storage/files/ü b.bin", str(out_dir), "--config", config])
    assert got.exit_code == 0, got.output
    local = out_dir / "ü b.bin"
    assert local.read_bytes() == data
    assert (
        f"/GCP/storage/files/ü b.bin → {local}: {len(data):,} bytes, sha1 {hashlib.sha1(data).hexdigest()}"
        in got.stdout
    )
    assert "(its sha1 matches)" in got.stdout
    again = runner.invoke(app, ["box", "get", "GCP/storage/files/ü b.bin", str(local), "--config", config])
    assert again.exit_code == 1 and "exists; --force replaces it" in again.stderr

    remote = box.stat("GCP/storage/files/ü b.bin")
    assert remote is not None and remote.remote_id
    version = int(api_get(box_server, f"/files/{remote.remote_id}?fields=file_version")["file_version"]["id"])
    blob = box_server.data_dir / "blobs" / f"{version % 256:02x}" / str(version)
    rotten = bytearray(blob.read_bytes())
    rotten[len(rotten) // 2] ^= 0x01
    blob.write_bytes(bytes(rotten))
    damaged = runner.invoke(app, ["box", "get", "GCP/storage/files/ü b.bin", str(local), "--force", "--config", config])
    assert damaged.exit_code == 1, damaged.output
    assert (
        "is damaged: sha1 " in damaged.stderr
        and f"the destination says {hashlib.sha1(data).hexdigest()}" in damaged.stderr
    )
    assert local.read_bytes() == data and sorted(p.name for p in out_dir.iterdir()) == ["ü b.bin"]

    missing = runner.invoke(app, ["box", "get", "GCP/nope.bin", str(out_dir), "--config", config])
    assert missing.exit_code == 1 and "no file 'GCP/nope.bin' at box" in missing.stderr
