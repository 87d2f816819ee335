"""``offsite restore``'s exit status while it looks for the run: a destination that refuses
(Box's 403) is a failure, 1, like every other refusal; a run that is not there is bad input, 2.
Before, every error before the load was 2, so a script took "Box refused" for its own mistake."""

from __future__ import annotations

import json
import urllib.request
import uuid

import pytest
from typer.testing import CliRunner

from devstack.state import StackInfo
from offsite.cli import app
from tests.restore.test_roundtrip import STAGING, restore_env

pytestmark = pytest.mark.stack
__all__ = ["restore_env"]  # the fixture, used below


def box_admin(info: StackInfo, method: str, path: str, body: object = None) -> None:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{info.box.base_url}/_admin{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30):
        pass


def test_a_refusing_destination_is_exit_1_and_a_run_not_there_exit_2(restore_env: StackInfo) -> None:
    run_id = "r" + uuid.uuid4().hex[:12]  # no such run anywhere
    target = f"{restore_env.project}.restored.refused_{uuid.uuid4().hex[:6]}"
    args = ["restore", run_id, "--from", "box", "--to", target, "--staging-bucket", STAGING]

    missing = CliRunner().invoke(app, args)
    assert missing.exit_code == 2, missing.output
    assert f"no manifest of run {run_id!r}" in missing.output

    refusal = {"action": "error", "status": 403, "code": "access_denied_insufficient_permissions", "count": 50}
    box_admin(
        restore_env,
        "POST",
        "/faults",
        {"faults": [{"operation": op, **refusal} for op in ("get_folder", "get_folder_items")]},
    )
    try:
        refused = CliRunner().invoke(app, args)
    finally:
        box_admin(restore_env, "DELETE", "/faults")
    assert refused.exit_code == 1, refused.output
    assert "403" in refused.output or "access" in refused.output.lower(), refused.output


def test_a_target_dataset_that_does_not_exist_is_exit_2_before_anything_is_staged(restore_env: StackInfo) -> None:
    """Said before the files are read and staged; BigQuery (bqemulator: ``invalid``, BigQuery:
    ``notFound``) would only refuse at the load, after every file was staged."""
    from shared.gcp import gcs
    from tests.restore.test_roundtrip import export_and_wait, make_table

    make_table("edges_nodataset", False)
    run_id = export_and_wait(restore_env, "edges_nodataset", "PARQUET")
    dataset = f"nowhere_{uuid.uuid4().hex[:6]}"
    target = f"{restore_env.project}.{dataset}.t"
    result = CliRunner().invoke(app, ["restore", run_id, "--from", "box", "--to", target, "--staging-bucket", STAGING])
    assert result.exit_code == 2, result.output
    assert (
        f"the dataset {restore_env.project}.{dataset} of {target} does not exist; create it first"
        f" (bq mk --dataset {restore_env.project}:{dataset})"
    ) in " ".join(result.output.split())
    assert [o.name for o in gcs.list_prefix(STAGING, f"offsite-restore/{run_id}/")] == []
