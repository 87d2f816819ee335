"""``offsite logs``: the gcloud command it runs (``--print``), its filter and its refusals."""

from __future__ import annotations

import shlex
from pathlib import Path

from typer.testing import CliRunner

from offsite.cli import app

EXAMPLE = Path(__file__).resolve().parents[2] / "offsite.example.yaml"


def _printed(*args: str) -> list[str]:
    result = CliRunner().invoke(app, ["logs", "--print", "--config", str(EXAMPLE), *args])
    assert result.exit_code == 0, result.output
    return shlex.split(result.stdout)


def test_the_filter_names_the_functions_and_each_field_given() -> None:
    command = _printed(
        "-f", "fan_out", "-f", "upload_box", "--run-id", 'r1"x', "--severity", "warning", "--since", "2d"
    )
    assert command[:3] == ["gcloud", "logging", "read"]
    assert command[3] == (
        'resource.type="cloud_run_revision" AND resource.labels.service_name=("fan-out" OR "upload-box") '
        'AND jsonPayload.run_id="r1\\"x" AND severity>=WARNING'
    )
    assert command[4:7] == ["--project=bqx-ml", "--freshness=172800s", "--limit=200"]
    assert command[7].startswith("--format=table(")
    every = _printed("--table", "orders", "--destination", "sftp:acme", "--json")
    assert 'resource.labels.service_name=("fan-out" OR "export-table"' in every[3]
    assert every[3].endswith('jsonPayload.table="orders" AND jsonPayload.destination="sftp:acme"')
    assert every[-1] == "--format=json"


def test_bad_options_exit_2_naming_them() -> None:
    for args, needle in (
        (["-f", "fanout"], "--function: 'fanout' is not a function (expected one of fan_out,"),
        (["--severity", "loud"], "--severity: 'loud' is not one of DEFAULT,"),
        (["--since", "soon"], "--since: "),
    ):
        result = CliRunner().invoke(app, ["logs", "--print", "--config", str(EXAMPLE), *args])
        assert result.exit_code == 2 and needle in result.output, result.output


def test_on_the_local_stack_it_points_at_dev_logs() -> None:
    """With the local stack's environment (`. .offsite/env`) gcloud would read the real Cloud
    Logging (and crash without network or credentials); the stack's logs are `offsite dev logs`."""
    args = ["logs", "--config", str(EXAMPLE)]
    result = CliRunner().invoke(app, args, env={"PUBSUB_EMULATOR_HOST": "127.0.0.1:8085"})
    assert result.exit_code == 1, result.output
    assert "has no Cloud Logging; its functions' logs: offsite dev logs [FUNCTION] [-f]" in " ".join(
        result.output.split()
    )
    printed = CliRunner().invoke(app, [*args, "--print"], env={"PUBSUB_EMULATOR_HOST": "127.0.0.1:8085"})
    assert printed.exit_code == 0 and printed.stdout.startswith("gcloud logging read ")
