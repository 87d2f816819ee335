"""`offsite package`: reproducible archives with main.py, requirements.txt and shared/ only."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import zipfile
from pathlib import Path

from typer.testing import CliRunner

from devstack import packaging
from offsite.cli import app
from shared import topology
from tests.infra.conftest import REPO


def _copy_sources(dest: Path) -> Path:
    """functions/ and shared/ of the repo, with other mtimes and modes and some clutter."""
    for folder in ("functions", "shared"):
        shutil.copytree(REPO / folder, dest / folder, ignore=shutil.ignore_patterns("__pycache__"))
    later = 2_000_000_000
    for path in dest.rglob("*"):
        if path.is_file():
            os.utime(path, (later, later))
            path.chmod(0o600)
    (dest / "shared" / "__pycache__").mkdir()
    (dest / "shared" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (dest / "shared" / "tests").mkdir()
    (dest / "shared" / "tests" / "test_x.py").write_text("assert True\n")
    return dest


def test_archives_are_reproducible(tmp_path: Path) -> None:
    first = {
        a.source: a.md5
        for a in (packaging.build_archive(REPO, s, tmp_path / "a") for s in packaging.function_sources())
    }
    copy = _copy_sources(tmp_path / "repo")
    second = {
        a.source: a.md5
        for a in (packaging.build_archive(copy, s, tmp_path / "b") for s in packaging.function_sources())
    }
    assert first == second
    for source, md5 in first.items():
        assert hashlib.md5((tmp_path / "a" / f"{source}.zip").read_bytes()).hexdigest() == md5


def test_archive_holds_main_requirements_and_shared_only(tmp_path: Path) -> None:
    copy = _copy_sources(tmp_path / "repo")
    expected_shared = sorted(
        p.relative_to(copy).as_posix()
        for p in (copy / "shared").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and "tests" not in p.parts
    )
    for source in packaging.function_sources():
        archive = packaging.build_archive(copy, source, tmp_path / "out")
        with zipfile.ZipFile(archive.path) as zf:
            infos = zf.infolist()
            names = [i.filename for i in infos]
            assert names == sorted(names)
            assert names == sorted(["main.py", "requirements.txt", *expected_shared])
            assert zf.read("main.py") == (REPO / "functions" / source / "main.py").read_bytes()
            for info in infos:
                assert info.date_time == (1980, 1, 1, 0, 0, 0)
                assert info.external_attr >> 16 == 0o100644
        assert archive.path.name == f"{source}.zip"


def test_one_archive_per_function_source_folder() -> None:
    assert set(packaging.function_sources()) == {fn.source for fn in topology.FUNCTIONS}
    assert set(packaging.function_sources()) == {
        p.name for p in (REPO / "functions").iterdir() if (p / "main.py").is_file()
    }


def test_requirements_pin_every_distribution_the_code_path_imports() -> None:
    for source in packaging.function_sources():
        missing = packaging.missing_requirements(REPO, source)
        assert missing == [], (
            f"functions/{source}/requirements.txt lacks {missing}: run `offsite package --write-requirements`"
        )
        pins = packaging.read_requirements(REPO / "functions" / source / "requirements.txt")
        for name, version in pins.items():
            assert importlib.metadata.version(name) == version, (
                f"{source}: {name}=={version} is not what the tests run with"
            )
        assert "functions-framework" in pins


def test_delivery_functions_carry_their_protocol_libraries() -> None:
    pins = {
        s: packaging.read_requirements(REPO / "functions" / s / "requirements.txt")
        for s in packaging.function_sources()
    }
    assert "box-sdk-gen" in pins["upload_box"]
    assert "paramiko" in pins["transfer_sftp"]
    text = (REPO / "functions" / "upload_box" / "requirements.txt").read_text()
    assert "box-sdk-gen[jwt]==" in text  # seed 000 signs JWT assertions: pyjwt + cryptography


def test_code_path_scan_follows_shared_imports_and_ignores_type_checking(tmp_path: Path) -> None:
    (tmp_path / "functions" / "fn").mkdir(parents=True)
    (tmp_path / "functions" / "fn" / "main.py").write_text("import functions_framework\nfrom shared import a\n")
    (tmp_path / "shared" / "sub").mkdir(parents=True)
    (tmp_path / "shared" / "__init__.py").write_text("")
    (tmp_path / "shared" / "sub" / "__init__.py").write_text("import json\n")
    (tmp_path / "shared" / "a.py").write_text(
        "from typing import TYPE_CHECKING\nfrom .sub import b\nif TYPE_CHECKING:\n    import numpy\n"
        "def load():\n    import yaml\n    return yaml\n"
    )
    (tmp_path / "shared" / "sub" / "b.py").write_text("from google.cloud import storage\nfrom ..never import x\n")
    (tmp_path / "shared" / "unused.py").write_text("import pandas\n")
    files, modules = packaging.code_path(tmp_path, "fn")
    assert {f.relative_to(tmp_path).as_posix() for f in files} == {
        "functions/fn/main.py",
        "shared/__init__.py",
        "shared/a.py",
        "shared/sub/__init__.py",
        "shared/sub/b.py",
    }
    assert set(packaging.distributions(modules)) == {"functions-framework", "PyYAML", "google-cloud-storage"}


def test_offsite_package_command(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["package", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    header, *rows = [line.split() for line in result.stdout.splitlines()]
    assert header == ["FUNCTION", "ARCHIVE", "MD5", "BYTES"]
    assert [row[:2] for row in rows] == [[s, str(tmp_path / f"{s}.zip")] for s in packaging.function_sources()]
    for source in packaging.function_sources():
        assert (tmp_path / f"{source}.zip").is_file()
    again = CliRunner().invoke(app, ["package", "--out", str(tmp_path), "--json"])
    archives = json.loads(again.stdout)
    assert [a["source"] for a in archives] == list(packaging.function_sources())
    for archive, row in zip(archives, rows, strict=True):
        assert archive["md5"] == row[2] and archive["size"] == int(row[3].replace(",", ""))  # reproducible
        assert archive["size"] == (tmp_path / f"{archive['source']}.zip").stat().st_size
    bad = CliRunner().invoke(app, ["package", "--out", str(tmp_path), "--only", "nope"])
    assert bad.exit_code == 2
