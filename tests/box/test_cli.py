"""offsite box ls / tree against the local Box API (the config's box destination)."""

from __future__ import annotations

import io
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
    lines = [line.split() for line in listed.stdout.splitlines()]
    assert [(cols[0], cols[-1], cols[2]) for cols in lines] == [("-", "a.parquet", "4"), ("-", "b.parquet", "2")]
    assert lines[0][3] == "70c881d4a26984ddce795f6f71817c9cf4480e79"  # sha1 of b"aaaa"

    drawn = runner.invoke(app, ["box", "tree", "GCP", "--depth", "2", "--config", config])
    assert drawn.exit_code == 0, drawn.output
    assert drawn.stdout.splitlines()[0] == "/GCP"
    assert "└── bigquery/" in drawn.stdout and "sales/" in drawn.stdout and "1 item" in drawn.stdout
    assert "orders/" not in drawn.stdout  # deeper than --depth

    full = runner.invoke(app, ["box", "tree", "--depth", "9", "--config", config])
    assert "a.parquet  4 B  sha1 70c881d4a26984ddce795f6f71817c9cf4480e79" in full.stdout

    missing = runner.invoke(app, ["box", "ls", "no/such/folder", "--config", config])
    assert missing.exit_code == 1 and "no folder 'no/such/folder'" in missing.output
