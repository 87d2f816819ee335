"""End to end on the full local stack: an export request routed to ``drive:reports`` becomes
files in the local Drive server, byte for byte, and verify reports the run ``in_sync``.

export-requests → fan_out → export_table → GCS finalize → relay → upload_box (which serves
box and drive) → devstack/driveapi; receipts on ``deliveries``, then verify lists the Drive
folder (SHA-1 from Drive's sha1Checksum) against the manifest. Also ``offsite drive ls|tree``
on the stack's config. Waiting is by polling what the pipeline produced, never by elapsed time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from devstack.state import StackInfo
from shared.config_load import load_config
from shared.destinations.drive.destination import DriveDestination
from shared.gcp import clients, pubsub
from shared.topology import EXPORT_REQUESTS, VERIFY_RESULTS
from tests.exports.conftest import Puller

pytestmark = pytest.mark.stack
WAIT_S = 240.0


def test_an_export_to_drive_is_delivered_and_verified(stack_env: StackInfo) -> None:
    from devstack.sample_data import seed

    seed(clients.bigquery_client(), clients.project(), tables=("customers",))
    results = f"projects/{stack_env.project}/subscriptions/drive-e2e-{uuid.uuid4().hex[:8]}"
    clients.subscriber_client().create_subscription(
        name=results, topic=f"projects/{stack_env.project}/topics/{VERIFY_RESULTS}"
    )
    run_id = "d" + uuid.uuid4().hex[:12]
    request = {"dataset": "sales", "tables": ["customers"], "run_id": run_id, "destinations": ["drive:reports"]}
    pubsub.publish(EXPORT_REQUESTS, json.dumps(request).encode())

    (result,) = Puller(results).pull(
        lambda m: m.get("run_id") == run_id and m.get("destination") == "drive:reports", timeout_s=WAIT_S
    )
    assert result["status"] == "in_sync", result
    assert result["check"] == "sha1"  # Drive lists sha1Checksum: no download needed

    config = load_config(stack_env.config_path, environ={})
    drive = DriveDestination("reports", config.destinations.drive["reports"])
    listed = [f for f in drive.list("sales/customers") if run_id in f.path]
    assert listed and all(f.sha1 for f in listed)

    cli = [sys.executable, "-m", "offsite.cli", "drive"]
    env_config = ["--config", str(stack_env.config_path)]
    folder = listed[0].path.rpartition("/")[0]
    ls = subprocess.run([*cli, "ls", folder, "--json", *env_config], capture_output=True, text=True, check=False)
    assert ls.returncode == 0, ls.stderr
    items = json.loads(ls.stdout)["items"]
    assert sorted(i["name"] for i in items) == sorted(f.path.rpartition("/")[2] for f in listed)
    tree = subprocess.run([*cli, "tree", "sales", *env_config], capture_output=True, text=True, check=False)
    assert tree.returncode == 0 and "customers/" in tree.stdout and run_id in tree.stdout, tree.stdout + tree.stderr
