"""``offsite restore``'s exit codes before and around the destination: bad options are 2 before
any destination is opened; a destination that cannot be reached now is 1 (try again), not 2."""

from __future__ import annotations

import socket
from pathlib import Path

from typer.testing import CliRunner

from offsite.cli import app
from tests.unit.config_files import MINIMAL, write


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _restore(tmp_path: Path, *options: str) -> tuple[int, str]:
    # a partner nobody listens for: connecting fails at once (connection refused)
    text = MINIMAL.replace("host: sftp.example.com", f"host: 127.0.0.1\n      port: {_closed_port()}")
    text = text.replace("[sftp.example.com]:22", "[127.0.0.1]:22")
    path = write(tmp_path, text)
    args = ["restore", "r1", "--from", "sftp:acme", "--staging-bucket", "stage", "--config", str(path), *options]
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.output


def test_bad_options_are_refused_before_the_destination_is_opened(tmp_path: Path) -> None:
    """Both used to surface only after connecting: here, a connection error instead (exit 2)."""
    code, output = _restore(tmp_path, "--to", "not-a-table")
    assert code == 2 and "restore --to: 'not-a-table' is not PROJECT.DATASET.TABLE" in output, output
    code, output = _restore(tmp_path, "--to", "p.d.t", "--write-disposition", "x")
    assert code == 2 and "--write-disposition: 'x' is not one of empty, truncate, append" in output, output


def test_a_destination_that_cannot_be_reached_is_exit_1_not_bad_input(tmp_path: Path) -> None:
    code, output = _restore(tmp_path, "--to", "p.d.t")
    assert code == 1 and output.startswith("error: ") and "sftp:acme" in output, output


def test_a_missing_required_option_says_what_it_is(tmp_path: Path) -> None:
    """Before: `restore --staging-bucket is required`, with no word of what bucket is meant."""
    path = write(tmp_path, MINIMAL)
    result = CliRunner().invoke(app, ["restore", "r1", "--from", "sftp:acme", "--to", "p.d.t", "--config", str(path)])
    assert result.exit_code == 2
    assert (
        "restore --staging-bucket is required: a GCS bucket you can write to, where the files wait for the load job"
        in result.output
    ), result.output
    result = CliRunner().invoke(app, ["restore", "r1", "--staging-bucket", "stage", "--config", str(path)])
    assert result.exit_code == 2
    assert "restore --to is required: the table to load, PROJECT.DATASET.TABLE" in result.output, result.output
