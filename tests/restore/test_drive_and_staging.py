"""``offsite restore --from drive:NAME`` on the local stack (the local Drive API server), and the
staging objects: deleted once the load job is over, kept with ``--keep-staging``."""

from __future__ import annotations

import json
import uuid

import pytest
from typer.testing import CliRunner

from devstack.state import StackInfo
from offsite.cli import app
from shared.gcp import gcs
from tests.restore.test_roundtrip import STAGING, make_table, restore_env, restored_rows
from tests.verify.test_pipeline import final, wait_for

pytestmark = pytest.mark.stack
__all__ = ["restore_env"]  # the fixture, used below


def staged(run_id: str) -> list[str]:
    return [o.name for o in gcs.list_prefix(STAGING, f"offsite-restore/{run_id}/")]


def test_a_drive_copy_restores_and_its_staging_is_removed_unless_kept(restore_env: StackInfo) -> None:
    make_table("edges_drive", True)
    run_id = "r" + uuid.uuid4().hex[:12]
    request = {"dataset": "sales", "tables": ["edges_drive"], "run_id": run_id, "destinations": ["drive:reports"]}
    restore_env.pubsub_admin().publish("export-requests", json.dumps(request).encode())
    results = wait_for(
        restore_env.state_bucket, run_id, lambda rs: bool(final(rs, "drive:reports")), "the drive result"
    )
    assert [r.status for r in final(results, "drive:reports")] == ["in_sync"]

    target = f"{restore_env.project}.restored.drive_{uuid.uuid4().hex[:6]}"
    base = ["restore", run_id, "--from", "drive:reports", "--staging-bucket", STAGING, "--json"]
    cli = CliRunner().invoke(app, [*base, "--to", target])
    assert cli.exit_code == 0, cli.output
    summary = json.loads(cli.stdout)
    assert summary["equal"] is True and summary["fingerprint_checked"] is True and summary["restored_rows"] == 3
    assert staged(run_id) == []  # deleted after the load job
    assert [r["id"] for r in restored_rows(target)] == [1, 2, 3]

    kept = CliRunner().invoke(app, [*base, "--to", target + "_kept", "--keep-staging"])
    assert kept.exit_code == 0, kept.output
    printed = json.loads(kept.stdout)["staging"]  # under this invocation's own folder
    assert sorted(f"gs://{STAGING}/{name}" for name in staged(run_id)) == sorted(printed)
    assert len({uri.rsplit("/", 2)[1] for uri in printed}) == 1
    text = CliRunner().invoke(app, [*base[:-1], "--to", target + "_kept2", "--keep-staging"])
    assert text.exit_code == 0, text.output
    [folder_line] = [line for line in text.output.splitlines() if "staged files kept under" in line]
    folder = folder_line.split("kept under ", 1)[1]
    assert folder.startswith(f"gs://{STAGING}/offsite-restore/{run_id}/") and folder not in printed[0]
    assert [n for n in staged(run_id) if f"gs://{STAGING}/{n}".startswith(folder)]


def test_staging_is_removed_when_the_load_job_fails(restore_env: StackInfo) -> None:
    make_table("edges_loadfail", False)
    run_id = "r" + uuid.uuid4().hex[:12]
    request = {"dataset": "sales", "tables": ["edges_loadfail"], "run_id": run_id, "destinations": ["box"]}
    restore_env.pubsub_admin().publish("export-requests", json.dumps(request).encode())
    wait_for(restore_env.state_bucket, run_id, lambda rs: bool(final(rs, "box")), "the box result")
    target = f"{restore_env.project}.restored.loadfail_{uuid.uuid4().hex[:6]}"
    args = ["restore", run_id, "--from", "box", "--to", target, "--staging-bucket", STAGING]
    assert CliRunner().invoke(app, args).exit_code == 0
    # the table has rows now: write disposition `empty` makes the second load job fail. BigQuery's
    # reason is `duplicate` (exit 2, bad input: tests/restore/test_restore_exit_codes.py); the
    # local stack answers `invalid`, a failed load job (exit 1)
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 1 and "error:" in again.output and target in again.output, again.output
    assert staged(run_id) == []
