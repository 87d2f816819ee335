"""A job that fails transiently is followed by ``…_retryN`` writing to the same destination
(docs/exports.md, "Retries of a failed job"). The BigQuery front fails a job after it wrote its
files (``/_bqfront/failures``, devstack/bqfront/failing.py), in smaller shards than its retry
makes: the failed attempt's files must not break, or slip into, the retry's manifest; and the
finalize sweep starts the retry of a job whose completion event was lost.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from shared.errors import ConfigError, PermanentError
from shared.gcp import gcs
from shared.gcp.bigquery import ExportResult
from shared.gcp.bq_jobs import attempt_id
from shared.layout import is_data_file, shard_name
from shared.stages.export import BUDGET_ENV, export_job_id, file_pattern, run_folder, time_budget_s
from shared.stages.export_records import build_manifest, failure_claim
from tests.exports.conftest import ExportsKit, manifest_of, query_task
from tests.exports.test_completion_events import Hold, _exists, _front, job_state, sweep_event

DAY = dt.date(2025, 1, 8)


def plan_failure(kit: ExportsKit, job_id: str) -> None:
    """``job_id`` writes one shard per 1,024 rows (its retry: one file), then fails with backendError."""
    _front(kit, "POST", "/_bqfront/failures", {"job_id": job_id, "reason": "backendError", "shard_bytes": 1})


def data_files(kit: ExportsKit, prefix: str) -> list[str]:
    return sorted(o.name for o in gcs.list_prefix(kit.bucket, prefix) if is_data_file(o.name[len(prefix) :]))


def reported_failure(kit: ExportsKit, task: Any) -> bytes | None:
    return gcs.read_bytes(kit.config.state_bucket_name, failure_claim(run_folder(task, kit.config)))


def until_done(kit: ExportsKit, job_id: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while job_state(kit, job_id) != "DONE":
        assert time.monotonic() < deadline, f"{job_id} not DONE in time"
        time.sleep(0.2)


def test_a_retry_that_makes_fewer_files_than_its_failed_attempt_gets_its_manifest(
    exports_env: ExportsKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    kit = exports_env
    monkeypatch.setenv(BUDGET_ENV, "120")  # the handler waits for both attempts
    task = query_task(kit, DAY, "CSV")
    base = export_job_id(task, kit.config)
    plan_failure(kit, base)
    kit.main.export_table(kit.table_export_event(task))
    manifest = manifest_of(kit, task)
    assert manifest is not None, f"no manifest; failure reported: {reported_failure(kit, task)!r}"
    assert manifest.job_id == attempt_id(base, 1)
    assert [f.object for f in manifest.files] == data_files(kit, task.prefix)  # the failed attempt's are gone
    assert len(manifest.files) == 1
    assert manifest.row_count == kit.source_count("orders", where_date=DAY)


def test_the_sweep_starts_the_retry_of_a_transiently_failed_export(kit: ExportsKit) -> None:
    """attempt 0 failed transiently and its completion event was lost: the sweep, which never
    starts attempt 0, starts its successor, and the run completes (before, every sweep for two
    days looked at it, found no ``_retry1`` and left it open, reporting nothing)."""
    task = query_task(kit, DAY, "CSV")
    base = export_job_id(task, kit.config)
    plan_failure(kit, base)
    with Hold(kit, base) as hold:
        kit.main.export_table(kit.table_export_event(task))  # acked after 1 s: attempt 0 is held
        hold.release()
    until_done(kit, base)
    assert len(data_files(kit, task.prefix)) > 1  # what the failed attempt left

    kit.main.export_table(sweep_event(kit))
    retry = attempt_id(base, 1)
    assert _exists(kit, retry), "the sweep did not start the successor of the failed job"
    until_done(kit, retry)
    if manifest_of(kit, task) is None:  # the retry outlasted the sweep's 3 s look: the next sweep
        kit.main.export_table(sweep_event(kit))
    manifest = manifest_of(kit, task)
    assert manifest is not None, f"no manifest; failure reported: {reported_failure(kit, task)!r}"
    assert manifest.job_id == retry
    assert [f.object for f in manifest.files] == data_files(kit, task.prefix)
    assert manifest.row_count == kit.source_count("orders", where_date=DAY)


def _two_shards_around(kit: ExportsKit, task: Any) -> dt.datetime:
    """Shard 1 (an earlier attempt's leftover), then shard 0 (the retry's); the retry's creation
    time between them, as GCS and BigQuery report them."""
    prefix, pattern = task.prefix, file_pattern(task)
    gcs.write(kit.bucket, prefix + shard_name(pattern, 1), b"attempt 0's leftover\n")
    left = gcs.stat(kit.bucket, prefix + shard_name(pattern, 1))
    assert left is not None and left.time_created is not None
    created = left.time_created + dt.timedelta(milliseconds=1)
    time.sleep(0.05)
    gcs.write(kit.bucket, prefix + shard_name(pattern, 0), b"the retry's only shard\n")
    return created


def test_without_a_file_count_a_retrys_manifest_lists_only_its_own_files(exports_env: ExportsKit) -> None:
    """Query mode: exportDataStatistics.fileCount is Alpha; when BigQuery leaves it out, files
    created before the retry job was are an earlier attempt's, not listed."""
    kit = exports_env
    task = query_task(kit, DAY, "CSV")
    created = _two_shards_around(kit, task)
    result = ExportResult("offsite_x_export_retry1", row_count=1, schema=[], file_count=None, created=created)
    manifest = build_manifest(task, kit.bucket, run_folder(task, kit.config), file_pattern(task), result, None)
    assert [f.name for f in manifest.files] == [shard_name(file_pattern(task), 0)]


def test_without_a_file_count_or_a_creation_time_a_retry_gets_no_manifest(exports_env: ExportsKit) -> None:
    kit = exports_env
    task = query_task(kit, DAY, "CSV")
    _two_shards_around(kit, task)
    result = ExportResult("offsite_x_export_retry1", row_count=1, schema=[], file_count=None)
    with pytest.raises(PermanentError, match=r"offsite_x_export_retry1 is a retry that reports no file count"):
        build_manifest(task, kit.bucket, run_folder(task, kit.config), file_pattern(task), result, None)


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "NaN", "Infinity"])
def test_a_budget_that_is_not_finite_is_refused(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """nan (every comparison false) or inf would wait for a running job without end."""
    monkeypatch.setenv(BUDGET_ENV, raw)
    with pytest.raises(ConfigError, match=rf"{BUDGET_ENV}: '{raw}' must be a finite, positive number of seconds"):
        time_budget_s()
