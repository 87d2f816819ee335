from __future__ import annotations

import json
from pathlib import Path

from click.testing import Result
from typer.testing import CliRunner

from offsite.cli import app

EXAMPLE = Path(__file__).resolve().parents[2] / "offsite.example.yaml"
runner = CliRunner()


def test_validate_ok() -> None:
    result = runner.invoke(app, ["config", "validate", "-c", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert "4 datasets, 1 exports, destinations: box, sftp:acme; 1 collect jobs)" in result.output


def test_validate_json_names_what_the_config_holds() -> None:
    result = runner.invoke(app, ["config", "validate", "-c", str(EXAMPLE), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "ok": True,
        "path": str(EXAMPLE),
        "datasets": 4,
        "exports": 1,
        "destinations": ["box", "sftp:acme"],
        "collect_jobs": 1,
    }


def test_validate_json_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("project: p\nbucket: bkt\ndatasets: [{name: s, schedule: '61 * * * *', format: XML}]\n")
    result = runner.invoke(app, ["config", "validate", "-c", str(path), "--json"])
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["path"] == str(path) and len(report["errors"]) == 2
    assert "datasets[0].schedule: '61 * * * *' is not a valid cron expression" in report["errors"]


def validate(tmp_path: Path, text: str) -> Result:
    """``offsite config validate`` of a config file holding ``text``."""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return runner.invoke(app, ["config", "validate", "-c", str(path)])


def test_validate_reports_one_clear_line(tmp_path: Path) -> None:
    result = validate(tmp_path, "project: p\nbucket: bkt\ndatasets: [{name: s, schedule: '61 * * * *'}]\n")
    assert result.exit_code == 2
    assert "datasets[0].schedule: '61 * * * *' is not a valid cron expression" in result.output


def test_validate_prints_every_problem_on_its_own_line(tmp_path: Path) -> None:
    result = validate(tmp_path, "project: p\nbucket: bkt\ndatasets: [{name: s, schedule: '61 * * * *', format: XML}]\n")
    assert result.exit_code == 2
    assert "error: datasets[0].schedule: '61 * * * *' is not a valid cron expression\n" in result.output
    assert "error: datasets[0].format: 'XML' is not a supported format; expected one of PARQUET" in result.output


def test_show_masks_secrets(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "project: p\nbucket: bkt\ndestinations:\n  sftp:\n    acme: {host: h, username: u, password: pa55word, host_key_fingerprint: 'SHA256:abc'}\n"
    )
    result = runner.invoke(app, ["config", "show", "-c", str(cfg)])
    assert result.exit_code == 0, result.output
    assert "pa55word" not in result.output and "password: '***'" in result.output
    as_json = runner.invoke(app, ["config", "show", "-c", str(cfg), "--json"])
    assert as_json.exit_code == 0, as_json.output
    shown = json.loads(as_json.stdout)
    assert shown["destinations"]["sftp"]["acme"]["password"] == "***" and shown["bucket"] == "bkt"
    assert "pa55word" not in as_json.output


def test_docs_lists_every_section() -> None:
    result = runner.invoke(app, ["config", "docs"])
    assert result.exit_code == 0
    for key in (
        "bucket (required)",
        "destinations.sftp.NAME.known_hosts (secret)",
        "verify.deadline_minutes (default: 120)",
    ):
        assert key in result.output
