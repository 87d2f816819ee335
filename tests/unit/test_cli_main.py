"""The `offsite` entry point (`offsite.cli.main`) ends every failure with one `error:` line and
the CLI's exit status, never a traceback: an OffsiteError no command caught itself, and missing
Application Default Credentials (the first thing a new user meets outside the local stack)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.state import StackInfo

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "offsite.example.yaml"


def _offsite(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`offsite ARGS` as a user runs it: its own process, only the environment given."""
    base = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), "LANG": "C.UTF-8"}
    return subprocess.run(
        [sys.executable, "-m", "offsite.cli", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _no_credentials(tmp_path: Path) -> dict[str, str]:
    """No key file, no gcloud login (an empty HOME and gcloud config), no metadata server."""
    return {"HOME": str(tmp_path), "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"), "NO_GCE_CHECK": "True"}


@pytest.mark.parametrize("command", [["status"], ["verify", "r0123456789ab"], ["run", "--dataset", "bqx_ml_v3_models"]])
def test_without_credentials_a_command_says_how_to_log_in(command: list[str], tmp_path: Path) -> None:
    done = _offsite(*command, "-c", str(EXAMPLE), env=_no_credentials(tmp_path))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "DefaultCredentialsError" not in done.stderr, done.stderr
    assert "error: no Google Cloud credentials: run `gcloud auth application-default login`" in done.stderr


@pytest.mark.stack
def test_an_error_no_command_caught_is_one_line_with_its_exit_status(bare_stack: StackInfo) -> None:
    # The example config's state bucket does not exist on the stack: `status` lists it and GCS
    # answers 404, an OffsiteError that `status` does not catch itself.
    done = _offsite("status", "-c", str(EXAMPLE), env=bare_stack.env)
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "bqx-ml-offsite-exports-state" in errors[0], done.stderr
    assert done.returncode == 1, done.stderr  # a PermanentError: the operation failed (2 is for bad input)


def test_run_as_a_module_it_still_calls_itself_offsite(tmp_path: Path) -> None:
    done = _offsite("sftp", "ls", "acme", "/", env=_no_credentials(tmp_path))
    assert done.returncode == 2
    assert "Try 'offsite sftp ls --help' for help." in done.stderr, done.stderr
