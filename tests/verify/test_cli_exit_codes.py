"""Exit statuses of `offsite verify`: 2 is bad input (the run cannot be found); a destination that
cannot be reached now is a check that failed (its own FAILED row), exit 1."""

from __future__ import annotations

import socket

import pytest
import yaml
from typer.testing import CliRunner

from offsite.cli import app
from tests.verify.conftest import VerifyStack

pytestmark = pytest.mark.stack

FILES = {"orders_20250108-000000000000.parquet": b"PAR1" + b"o" * 700}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_verify_with_the_sftp_server_down_exits_1_not_2(vstack: VerifyStack, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from shared import runtime

    run = vstack.new_run(FILES, destinations=("sftp:local",))
    raw = yaml.safe_load(vstack.config_path.read_text())
    raw["destinations"]["sftp"]["local"]["port"] = _closed_port()  # the partner's server is down right now
    down = tmp_path / "down.yaml"
    down.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("OFFSITE_CONFIG", str(down))
    runtime.reset()
    out = CliRunner().invoke(app, ["verify", run.run_id])
    assert out.exit_code == 1, out.output  # before: 2, which --help keeps for "the run cannot be found"
    # its own FAILED row saying why, not a traceback (the other destinations would still be checked)
    assert f"{run.run_id}  sales.orders  2025-01-08  → sftp:local: FAILED" in out.output, out.output
    assert "could not be checked: sftp:local: connecting to 127.0.0.1:" in out.output and "Traceback" not in out.output
    unknown = CliRunner().invoke(app, ["verify", "rnosuchrun0002"])
    assert unknown.exit_code == 2 and "no run 'rnosuchrun0002'" in unknown.output
