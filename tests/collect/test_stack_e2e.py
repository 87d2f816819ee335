"""Collect through the deployed code path: the stack's functions (collect_list, collect_copy) under
the push dispatcher, the stack's sshd as the partner (`offsite dev seed`'s sample files), Box."""

from __future__ import annotations

import hashlib
import re
import time

import pytest

from devstack.collect_seed import sample_files, seed_partner_files
from devstack.localconfig import COLLECT_JOB, COLLECT_OUTBOX, COLLECT_PROCESSED
from devstack.state import StackInfo
from shared import runtime
from shared.collect.messages import CollectRequest
from shared.collect.runs import freshness, wait_for_run
from shared.destinations.factory import opened
from shared.gcp import pubsub
from shared.ids import Status
from shared.topology import COLLECT_REQUESTS

pytestmark = pytest.mark.stack


def test_published_request_collects_the_outbox_into_box_and_moves_it(stack_env: StackInfo) -> None:
    config = runtime.config()
    seed_partner_files(stack_env)
    request = CollectRequest(collect=COLLECT_JOB, run_id="rcollecte2e1", ignore_calendar=True)
    pubsub.publish(COLLECT_REQUESTS, request)
    result = wait_for_run(config.state_bucket_name, COLLECT_JOB, "rcollecte2e1", timeout_s=240)
    assert result is not None, "no collect result within 240 s"
    files = sample_files()
    assert (result.status, result.files_expected, result.files_present) == (Status.IN_SYNC, 2, 2)
    assert result.bytes_present == sum(map(len, files.values()))
    with opened("box", config) as box:
        listed = {f.path: f for f in box.list(f"collect/{COLLECT_JOB}")}
    assert {p: f.sha1 for p, f in listed.items()} == {
        f"collect/{COLLECT_JOB}/{name}": hashlib.sha1(data).hexdigest() for name, data in files.items()
    }
    assert list((stack_env.sftp.directory / COLLECT_OUTBOX).iterdir()) == []
    assert sorted(p.name for p in (stack_env.sftp.directory / COLLECT_PROCESSED).iterdir()) == sorted(files)
    # the freshness record follows the result's publication (written right after it)
    deadline = time.monotonic() + 60
    while (record := freshness(config.state_bucket_name, COLLECT_JOB) or {}).get("last_run_id") != "rcollecte2e1":
        assert time.monotonic() < deadline, f"freshness not updated: {record}"
        time.sleep(0.5)
    assert record["last_status"] == "in_sync" and record["last_collected_at"] and record["last_files"] == 2

    # `offsite collect run --wait` through the same functions: the outbox is empty now (moved to
    # processed), so the run is reported in_sync with nothing to copy, and the command exits 0
    from typer.testing import CliRunner

    from offsite.cli import app

    out = CliRunner().invoke(app, ["collect", "run", COLLECT_JOB, "--any-day", "--wait", "--timeout", "240"])
    assert out.exit_code == 0, out.output
    assert re.search(rf"^collect {COLLECT_JOB} r[0-9a-f]{{12}}: in_sync \(collect_copy\): 0/0 files", out.stdout, re.M)
