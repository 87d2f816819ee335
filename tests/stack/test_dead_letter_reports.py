"""Through the stack: an upload that fails every delivery is dead-lettered, and the dead letter
reaches the real verify function as a `failed` result in the run history (and an alert).

upload_box's events go to a recording endpoint that always answers 500 (start_stack(targets=…));
verify is the real function; backoff is shortened by a config overlay.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devstack.state import StackInfo
from shared.config import load_config
from shared.messages import Source, VerifyResult
from tests.private_stacks import failing_sink, private_stack
from tests.run_folders import start_run
from tests.stack.sink import RecordingSink

DAY = dt.date(2025, 1, 8)


@pytest.fixture(scope="module")
def failing() -> Iterator[RecordingSink]:
    with failing_sink() as sink:
        yield sink


@pytest.fixture(scope="module")
def dlq_stack(stack_root_factory: Callable[[str], Path], failing: RecordingSink) -> Iterator[StackInfo]:
    quick = "pubsub: {minimum_backoff_s: 0, maximum_backoff_s: 1}\n"
    targets = {"upload_box": f"{failing.url}/upload_box"}
    with private_stack(
        stack_root_factory, "deadletters", quick, functions=["verify"], without=("bigquery", "sftp"), targets=targets
    ) as info:
        yield info


@pytest.fixture
def dlq_env(dlq_stack: StackInfo, monkeypatch: pytest.MonkeyPatch) -> Iterator[StackInfo]:
    from shared.gcp import clients

    for key, value in dlq_stack.env.items():
        monkeypatch.setenv(key, value)
    clients.reset()  # the clients must talk to this stack
    yield dlq_stack
    clients.reset()


def test_a_dead_lettered_upload_is_reported_failed_by_the_verify_function(
    dlq_env: StackInfo, failing: RecordingSink
) -> None:
    dlq_stack = dlq_env
    from shared.gcp import gcs
    from shared.reporting.history import read

    config = load_config(dlq_stack.config_path, environ={})
    run_id = "r" + uuid.uuid4().hex[:12]
    source = Source(mode="table", project=config.project, dataset="sales", table="orders")
    folder = start_run(
        config.bucket, config.export_prefix, source, DAY, run_id, ("box",), "orders_{YYYYMMDD}-*.parquet"
    )
    gcs.write(config.bucket, folder.prefix + "orders_20250108-000000000000.parquet", b"x" * 1000)
    deadline = time.monotonic() + 180
    failed: list[VerifyResult] = []
    while not failed:
        assert time.monotonic() < deadline, f"no failed result; upload_box got {len(failing.received)} deliveries"
        history = read(config.state_bucket_name, dt.datetime.now(dt.UTC) - dt.timedelta(hours=1), run_ids=[run_id])
        failed = [r for r in history if r.status == "failed"]
        time.sleep(0.5)
    attempts = [r for r in failing.received if r.path == "/upload_box" and "orders_20250108" in str(r.body)]
    assert len(attempts) == config.pubsub.max_delivery_attempts
    [result] = failed
    assert (result.stage, result.destination, result.run_id) == ("upload_box", "box", run_id)
    assert result.source is not None and result.source.label == "sales.orders"
    assert f"dead-lettered after {config.pubsub.max_delivery_attempts} delivery attempts" in (result.reason or "")
