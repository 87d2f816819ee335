"""`offsite sftp …` against a live sshd (typer's CliRunner, in-process)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from devstack.state import StackInfo
from offsite.cli import app
from shared.gcp import gcs
from tests.sftp.sshd_server import SftpUser, Sshd, user_dir

runner = CliRunner()


def explicit(sshd: Sshd, directory: Path, tmp_path: Path) -> list[str]:
    known = tmp_path / "known_hosts"
    known.write_text(sshd.known_hosts)
    return [
        "--host", "127.0.0.1", "--port", str(sshd.port), "--username", sshd.user.name,
        "--key", str(sshd.client_key), "--known-hosts", str(known), "--directory", str(directory),
    ]  # fmt: skip


def sftp(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["sftp", *args], input=input)


def populate(root: Path, sshd: Sshd) -> None:
    for rel, data in {"a/b/one.csv": b"1\n", "a/two.csv": b"22\n", "top.txt": b"top"}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    for path in [root, *root.rglob("*")]:
        os.chown(path, sshd.user.uid, sshd.user.gid)


def test_check(sshd: Sshd, workdir: Path, tmp_path: Path) -> None:
    result = sftp("check", *explicit(sshd, workdir, tmp_path))
    assert result.exit_code == 0, result.output
    assert f"host key:   ssh-ed25519 {sshd.host_fingerprint} (verified)" in result.output
    assert "posix-rename@openssh.com" in result.output and result.output.strip().endswith("ok")
    report = json.loads(sftp("check", "--json", *explicit(sshd, workdir, tmp_path)).stdout)
    assert report["host_key"] == f"ssh-ed25519 {sshd.host_fingerprint}" and report["ok"] is True
    assert (report["host"], report["port"], report["username"]) == ("127.0.0.1", sshd.port, sshd.user.name)
    assert "posix-rename@openssh.com" in report["extensions"] and report["directory"] == str(workdir)
    assert report["max_write"] > 0 and report["warnings"] == []
    assert (report["ssh_client"], report["cipher"]) == ("openssh", "aes128-gcm@openssh.com")  # a key login, auto
    assert "cipher:     aes128-gcm@openssh.com (ssh client: openssh)" in result.output


def test_check_refuses_a_changed_host_key(sshd: Sshd, workdir: Path, tmp_path: Path) -> None:
    args = explicit(sshd, workdir, tmp_path)
    at = args.index("--known-hosts")
    pinned = [*args[:at], *args[at + 2 :], "--fingerprint", "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"]
    result = sftp("check", *pinned)
    assert result.exit_code == 1
    assert "HOST KEY MISMATCH" in result.output and sshd.host_fingerprint in result.output


def test_host_key_shows_what_to_pin(sshd: Sshd) -> None:
    result = sftp("host-key", "--host", "127.0.0.1", "--port", str(sshd.port))
    assert result.exit_code == 0
    assert sshd.host_fingerprint in result.output
    assert sshd.known_hosts.strip() in result.output and "NOT trusted yet" in result.output
    offered = json.loads(sftp("host-key", "--host", "127.0.0.1", "--port", str(sshd.port), "--json").stdout)
    assert sshd.host_fingerprint in offered["offered"] and offered["trusted"] is False
    assert offered["known_hosts_line"] == sshd.known_hosts.strip()


def test_ls_and_tree(sshd: Sshd, workdir: Path, tmp_path: Path) -> None:
    populate(workdir, sshd)
    args = explicit(sshd, workdir, tmp_path)
    assert sftp("ls", *args).output.split() == ["a/", "top.txt"]
    header, *rows = [line.split() for line in sftp("ls", "-l", "a", *args).stdout.splitlines()]
    assert header == ["MODE", "SIZE", "MODIFIED", "NAME"]
    assert rows[0][0].startswith("drwx") and rows[0][-1] == "b/"
    assert rows[1][0].startswith("-rw") and rows[1][1:2] == ["3"] and rows[1][-1] == "two.csv"
    assert rows[1][2].endswith("Z")  # modification time in UTC
    listing = json.loads(sftp("ls", "a", "--json", *args).stdout)
    assert listing["path"] == str(workdir / "a")
    assert [(i["name"], i["type"], i["size"]) for i in listing["items"]][1] == ("two.csv", "file", 3)
    assert listing["items"][0]["name"] == "b" and listing["items"][0]["type"] == "folder"
    tree = sftp("tree", "--depth", "5", *args).output
    assert "│   │   └── one.csv  (2 bytes)" in tree and "└── top.txt  (3 bytes)" in tree
    assert "one.csv" not in sftp("tree", "--depth", "1", *args).output
    nested = json.loads(sftp("tree", "--depth", "5", "--json", *args).stdout)
    [a, top] = nested["items"]
    assert (a["name"], top["name"], top["size"]) == ("a", "top.txt", 3)
    assert [(i["name"], i["size"]) for i in a["items"][0]["items"]] == [("one.csv", 2)]
    shallow = json.loads(sftp("tree", "--depth", "1", "--json", *args).stdout)
    assert "items" not in shallow["items"][0]  # deeper than --depth


def test_rm_asks_refuses_outside_and_deletes(sshd: Sshd, workdir: Path, tmp_path: Path) -> None:
    populate(workdir, sshd)
    args = explicit(sshd, workdir, tmp_path)
    assert sftp("rm", "top.txt", *args, input="n\n").exit_code == 1
    assert (workdir / "top.txt").exists()
    assert sftp("rm", "top.txt", *args, input="y\n").exit_code == 0
    assert not (workdir / "top.txt").exists()
    refused = sftp("rm", "a", "-f", *args)
    assert refused.exit_code == 1 and "use -r" in refused.output
    outside = sftp("rm", "/etc/passwd", "-f", *args)
    assert outside.exit_code == 1 and "outside the partner directory" in outside.output
    assert sftp("rm", "../", "-rf", *args).exit_code == 1
    gone = sftp("rm", str(workdir / "a"), "-rf", "--json", *args)
    assert gone.exit_code == 0, gone.output
    a = str(workdir / "a")
    assert json.loads(gone.stdout) == {"deleted": [f"{a}/b/one.csv", f"{a}/b", f"{a}/two.csv", a], "count": 4}
    assert list(workdir.iterdir()) == []


def test_rm_never_deletes_outside_through_a_symbolic_link(
    sshd: Sshd, sftp_user: SftpUser, workdir: Path, tmp_path: Path
) -> None:
    outside = user_dir(sftp_user, "outside")  # not the partner directory
    try:
        populate(outside, sshd)
        (workdir / "archive").symlink_to(outside)  # a link inside the partner directory
        args = explicit(sshd, workdir, tmp_path)
        for path, flags in (("archive/top.txt", "-f"), ("archive/a", "-rf"), (f"{workdir}/archive/a/b", "-rf")):
            refused = sftp("rm", path, flags, *args)
            assert refused.exit_code == 1, refused.output
            assert "outside the partner directory" in refused.output and str(outside) in refused.output
        assert sorted(p.name for p in outside.rglob("*")) == ["a", "b", "one.csv", "top.txt", "two.csv"]
        gone = sftp("rm", "archive", "-f", "--json", *args)  # the link itself is inside: removed, not followed
        assert gone.exit_code == 0, gone.output
        assert json.loads(gone.stdout) == {"deleted": [f"{workdir}/archive"], "count": 1}
        assert list(workdir.iterdir()) == [] and (outside / "top.txt").exists()
    finally:
        shutil.rmtree(outside, ignore_errors=True)


def test_clear(sshd: Sshd, workdir: Path, tmp_path: Path) -> None:
    populate(workdir, sshd)
    args = explicit(sshd, workdir, tmp_path)
    assert sftp("clear", *args, input="n\n").exit_code == 1
    assert len(list(workdir.iterdir())) == 2
    result = sftp("clear", "-f", *args)
    assert result.exit_code == 0 and "deleted 5 item(s)" in result.output
    assert workdir.is_dir() and list(workdir.iterdir()) == []
    populate(workdir, sshd)
    asked = sftp("clear", "--json", *args, input="y\n")  # the question goes to stderr, the JSON alone to stdout
    assert asked.exit_code == 0, asked.output
    # Before the JSON only what input() writes: click's one-space prompt (JSON allows leading
    # whitespace) and, under CliRunner, the echoed answer a terminal would show
    assert asked.stdout.startswith(" y\n") and "delete all 2 entries" in asked.stderr
    assert json.loads(asked.stdout.removeprefix(" y\n"))["count"] == 5
    empty = sftp("clear", "--json", *args)
    assert json.loads(empty.stdout) == {"deleted": [], "count": 0}


def acme_config(sshd: Sshd, workdir: Path, tmp_path: Path) -> Path:
    """A config file with one SFTP partner, ``acme``: the test sshd, its directory ``workdir``."""
    config = tmp_path / "offsite.yaml"
    partner = {
        "host": "127.0.0.1",
        "port": sshd.port,
        "username": sshd.user.name,
        "private_key": f"file:{sshd.client_key}",
        "known_hosts": sshd.known_hosts,
        "directory": str(workdir),
    }
    config.write_text(
        yaml.safe_dump({"project": "p", "bucket": "b-ucket", "destinations": {"sftp": {"acme": partner}}})
    )
    return config


def test_named_partner_from_the_config(sshd: Sshd, workdir: Path, tmp_path: Path) -> None:
    config = acme_config(sshd, workdir, tmp_path)
    populate(workdir, sshd)
    assert sftp("ls", "--config", str(config)).output.split() == ["a/", "top.txt"]
    assert sftp("ls", "--config", str(config), "--partner", "acme").exit_code == 0
    unknown = sftp("ls", "--config", str(config), "--partner", "other")
    assert unknown.exit_code == 1 and "no partner named 'other'" in unknown.output


def test_a_partner_name_given_as_the_path_points_to_partner(sshd: Sshd, workdir: Path, tmp_path: Path) -> None:
    """``box ls``/``drive ls`` name a destination with --destination; ``sftp ls acme`` reads
    ``acme`` as a folder, and when there is none the error says to use --partner."""
    config = acme_config(sshd, workdir, tmp_path)
    populate(workdir, sshd)
    for command in ("ls", "tree"):
        named = sftp(command, "acme", "--config", str(config))
        assert named.exit_code == 1
        assert (
            "no such file or directory ('acme' is a partner: to list its directory, use --partner acme)" in named.output
        )
    missing = sftp("ls", "other", "--config", str(config))  # not a partner: the plain error
    assert (
        missing.exit_code == 1 and "no such file or directory" in missing.output and "--partner" not in missing.output
    )
    (workdir / "acme").mkdir()
    os.chown(workdir / "acme", sshd.user.uid, sshd.user.gid)
    assert sftp("ls", "acme", "--config", str(config)).exit_code == 0  # a folder of that name is listed


def test_explicit_host_needs_a_pin(sshd: Sshd, workdir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/known_hosts
    result = sftp(
        "ls", "--host", "127.0.0.1", "--port", str(sshd.port), "-u", sshd.user.name, "--key", str(sshd.client_key)
    )
    assert result.exit_code == 1 and "never accepted blindly" in result.output


def test_upload_from_gcs(bare_stack_env: StackInfo, sshd: Sshd, workdir: Path, tmp_path: Path) -> None:
    data = os.urandom(2_000_003)
    name = f"cli/{os.urandom(4).hex()}/file.bin"
    gcs.write(bare_stack_env.bucket, name, data)
    args = explicit(sshd, workdir, tmp_path)
    uri = f"gs://{bare_stack_env.bucket}/{name}"
    first = sftp("upload", "--gcs-uri", uri, "--remote-file", "in/file.bin", *args)
    assert first.exit_code == 0, first.output
    assert first.output.startswith("uploaded: ") and hashlib.sha1(data).hexdigest() in first.output
    assert (workdir / "in/file.bin").read_bytes() == data
    again = sftp("upload", "--gcs-uri", uri, "--remote-file", "in/file.bin", *args, "--json")
    result = json.loads(again.stdout)
    assert result["status"] == "unchanged" and result["size"] == len(data)
    assert result["sha1"] == hashlib.sha1(data).hexdigest() and result["path"].endswith("in/file.bin")
    missing = sftp("upload", "--gcs-uri", f"gs://{bare_stack_env.bucket}/nope", "--remote-file", "x", *args)
    assert missing.exit_code == 1 and "does not exist" in missing.output


def test_get_downloads_a_file_checked_by_size_and_only_inside_the_directory(
    sshd: Sshd, workdir: Path, tmp_path: Path
) -> None:
    populate(workdir, sshd)
    args = explicit(sshd, workdir, tmp_path)
    got = sftp("get", "a/two.csv", str(tmp_path), *args)
    assert got.exit_code == 0, got.output
    assert (tmp_path / "two.csv").read_bytes() == b"22\n"
    sha1 = hashlib.sha1(b"22\n").hexdigest()
    assert f"{workdir / 'a' / 'two.csv'} → {tmp_path / 'two.csv'}: 3 bytes, sha1 {sha1}" in got.stdout
    assert "(size only: the destination lists no hash)" in got.stdout
    outside = sftp("get", "../secret", str(tmp_path), *args)
    assert outside.exit_code == 1 and "is outside the partner directory" in outside.stderr
