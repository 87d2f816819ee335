"""`offsite status --since 30m` shows the results of the last 30 minutes, not of the whole UTC
day (the history is stored by day; shared/reporting/history.py read)."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from typer.testing import CliRunner

from devstack.state import StackInfo
from offsite.cli import app

pytestmark = pytest.mark.stack


def _result(run_id: str, status: str):  # type: ignore[no-untyped-def]
    from shared import runtime
    from shared.messages import Source, VerifyResult

    source = Source(mode="table", project=runtime.config().project, dataset="sales", table="orders")
    return VerifyResult(status=status, run_id=run_id, destination="box", source=source, reason="1 missing")


def test_history_read_drops_results_reported_before_since_on_its_day(bare_stack_env: StackInfo) -> None:
    from shared import runtime
    from shared.reporting import history

    runtime.reset()
    bucket = runtime.config().state_bucket_name
    run = "rday" + uuid.uuid4().hex[:9]
    ten, noon = (dt.datetime(2025, 1, 8, h, tzinfo=dt.UTC) for h in (10, 12))
    history.record(bucket, _result(run, "mismatch").model_copy(update={"finished_at": ten.isoformat()}), now=ten)
    history.record(bucket, _result(run, "in_sync").model_copy(update={"finished_at": noon.isoformat()}), now=noon)
    since, until = ten + dt.timedelta(hours=1), noon + dt.timedelta(minutes=30)
    assert [r.status for r in history.read(bucket, since, until, run_ids=[run])] == ["in_sync"]  # before: both
    assert [r.status for r in history.read(bucket, ten, until, run_ids=[run])] == ["mismatch", "in_sync"]


def test_status_since_hides_an_earlier_result(bare_stack_env: StackInfo) -> None:
    """The CLI passes its window on: a result 90 s old is not shown by ``--since 1m`` (whether it
    was stored under today's folder or, just after UTC midnight, yesterday's)."""
    from shared import runtime
    from shared.reporting import history

    runtime.reset()
    cfg = runtime.config()
    now = dt.datetime.now(dt.UTC)
    earlier = now - dt.timedelta(seconds=90)
    old_run, new_run = "rold" + uuid.uuid4().hex[:9], "rnew" + uuid.uuid4().hex[:9]
    old = _result(old_run, "mismatch").model_copy(update={"finished_at": earlier.isoformat()})
    history.record(cfg.state_bucket_name, old, now=earlier)
    history.record(cfg.state_bucket_name, _result(new_run, "in_sync"), now=now)
    out = CliRunner().invoke(app, ["status", "--since", "1m", "--json"])
    assert out.exit_code == 0, out.output
    runs = [row["run_id"] for row in json.loads(out.stdout)]
    assert new_run in runs
    assert old_run not in runs, f"--since 1m shows a result reported at {earlier:%H:%M:%S} UTC (now {now:%H:%M:%S})"
    assert old_run in [r.run_id for r in history.read(cfg.state_bucket_name, earlier)]  # from `since` on: kept
