"""offsite drive ls / tree against the local Drive API (a destinations.drive entry). The listing
and drawing are Box's (offsite/cli/browse.py, tested in tests/box/test_cli.py); this checks the
Drive side: choosing the destination and naming it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from devstack.driveapi import DriveApiServer
from devstack.driveapi.server import CLIENT_ID, CLIENT_SECRET
from offsite.cli import app
from shared.destinations.drive.destination import DriveDestination
from tests.drive.support import USER, new_folder, oauth_settings


def write_config(tmp_path: Path, server: DriveApiServer, folders: dict[str, str]) -> str:
    auth = {
        "method": "oauth",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": server.refresh_token(USER),
        "token_uri": server.token_uri,
    }
    drive = {name: {"folder_id": folder, "auth": auth, "api_url": server.base_url} for name, folder in folders.items()}
    path = tmp_path / "offsite.yaml"
    path.write_text(
        yaml.safe_dump({"project": "offsite-cli-test", "bucket": "offsite-cli-test", "destinations": {"drive": drive}})
    )
    return str(path)


def test_ls_and_tree(drive: DriveApiServer, tmp_path: Path) -> None:
    folder = new_folder(drive)
    dest = DriveDestination("reports", oauth_settings(drive, folder))
    for path, data in (("sales/orders/r1/a.csv", b"aaaa"), ("sales/orders/r1/b.csv", b"bb")):
        dest.put(path, io.BytesIO(data), len(data))
    config = write_config(tmp_path, drive, {"reports": folder})
    runner = CliRunner()

    # the table itself is the Box command's (tests/box/test_cli.py); here: what names the destination
    listed = runner.invoke(app, ["drive", "ls", "sales/orders/r1", "--config", config])
    assert listed.exit_code == 0, listed.output
    assert [line.split()[-1] for line in listed.stdout.splitlines()[1:]] == ["a.csv", "b.csv"]
    assert "2 items in drive:reports:/sales/orders/r1" in listed.stderr

    as_json = json.loads(runner.invoke(app, ["drive", "ls", "sales", "--json", "--config", config]).stdout)
    assert as_json["destination"] == "drive:reports" and as_json["path"] == "/sales"
    assert [(i["type"], i["name"]) for i in as_json["items"]] == [("folder", "orders")]

    drawn = runner.invoke(app, ["drive", "tree", "sales", "--depth", "1", "--config", config])
    assert drawn.exit_code == 0, drawn.output
    assert drawn.stdout.splitlines() == ["drive:reports:/sales", f"└── orders/ ({as_json['items'][0]['id']}, 1 item)"]
    full = runner.invoke(app, ["drive", "tree", "--depth", "9", "--no-files", "--config", config])
    assert "r1/" in full.stdout and "a.csv" not in full.stdout
    nested = json.loads(
        runner.invoke(app, ["drive", "tree", "sales", "--depth", "9", "--json", "--config", config]).stdout
    )
    [run] = nested["items"][0]["items"]
    assert [(f["name"], f["size"]) for f in run["items"]] == [("a.csv", 4), ("b.csv", 2)]

    two = write_config(tmp_path, drive, {"reports": folder, "archive": folder})
    ambiguous = runner.invoke(app, ["drive", "ls", "--config", two])
    assert ambiguous.exit_code != 0 and "several Drive destinations" in ambiguous.output
    chosen = runner.invoke(app, ["drive", "ls", "sales", "-D", "archive", "--json", "--config", two])
    assert json.loads(chosen.stdout)["destination"] == "drive:archive"


def test_get_downloads_a_file_checked_against_drives_hash(drive: DriveApiServer, tmp_path: Path) -> None:
    folder = new_folder(drive)
    dest = DriveDestination("reports", oauth_settings(drive, folder))
    dest.put("sales/r1/a.csv", io.BytesIO(b"id,name\n1,a\n"), 12)
    config = write_config(tmp_path, drive, {"reports": folder})
    target = tmp_path / "a-copy.csv"
    got = CliRunner().invoke(app, ["drive", "get", "sales/r1/a.csv", str(target), "--json", "--config", config])
    assert got.exit_code == 0, got.output
    fetched = json.loads(got.stdout)
    assert target.read_bytes() == b"id,name\n1,a\n" and fetched["local"] == str(target)
    assert fetched["size"] == 12 and fetched["check"] in ("sha1", "md5")  # Drive lists a hash: more than the size
