"""The front's job life cycle and EXPORT DATA parsing, without servers (real JobStore, real parser)."""

from __future__ import annotations

import threading

import pytest

from devstack.bqfront.errors import JobFailure, error_body
from devstack.bqfront.jobs import JobStore, new_resource
from devstack.bqfront.settings import from_extract, from_options
from devstack.bqfront.statement import is_export_data, parse_export_data


def test_a_job_goes_pending_running_done() -> None:
    store = JobStore()
    release, seen = threading.Event(), []

    def work(job):
        seen.append(job.snapshot()["status"]["state"])
        release.wait(30)
        return {"extract": {"destinationUriFileCounts": ["2"]}}

    body = {"jobReference": {"jobId": "j1", "location": "EU"}, "configuration": {"extract": {}}}
    job, pending = store.insert(new_resource("p", body, "EXTRACT", "http://front"), work)
    assert pending["status"] == {"state": "PENDING"}
    assert pending["jobReference"] == {"projectId": "p", "jobId": "j1", "location": "EU"}
    assert pending["id"] == "p:EU.j1" and pending["configuration"]["jobType"] == "EXTRACT"
    release.set()
    assert job.done.wait(30)
    assert seen == ["RUNNING"]
    done = store.get("p", "j1").snapshot()
    assert done["status"] == {"state": "DONE"}
    assert done["statistics"]["extract"] == {"destinationUriFileCounts": ["2"]}
    assert (
        int(done["statistics"]["creationTime"])
        <= int(done["statistics"]["startTime"])
        <= int(done["statistics"]["endTime"])
    )


def test_a_duplicate_id_and_a_failed_job() -> None:
    store = JobStore()

    def fail(_job):
        raise JobFailure("notFound", "Not found: Table p:d.t")

    body = {"jobReference": {"jobId": "same"}, "configuration": {"extract": {}}}
    job, _ = store.insert(new_resource("p", body, "EXTRACT", "http://front"), fail)
    with pytest.raises(JobFailure) as info:
        store.insert(new_resource("p", body, "EXTRACT", "http://front"), fail)
    assert info.value.reason == "duplicate" and info.value.http_status == 409
    assert error_body(info.value)["error"]["status"] == "ALREADY_EXISTS"
    assert job.done.wait(30)
    status = job.snapshot()["status"]
    assert status["errorResult"] == {"reason": "notFound", "message": "Not found: Table p:d.t"}
    assert status["errors"] == [status["errorResult"]] and status["state"] == "DONE"


def test_a_crash_in_a_job_is_a_backend_error() -> None:
    store = JobStore()
    job, _ = store.insert(new_resource("p", {"configuration": {"extract": {}}}, "EXTRACT", "u"), lambda _j: 1 / 0)
    assert job.done.wait(30)
    assert job.snapshot()["status"]["errorResult"]["reason"] == "backendError"
    assert job.job_id.startswith("bqfront_")  # no id from the caller: one is generated


def test_export_data_statement_parts() -> None:
    sql = """-- daily
    export data with connection `p.us.c` OPTIONS (
        uri = 'gs://bkt/a/it\\'s-*.csv', format="CSV", overwrite=TRUE, header = false,
        field_delimiter = r'\\t', compression='GZIP'
    ) as SELECT 'x)' AS a, ") , (" AS b FROM t WHERE d = @run_date;"""
    parsed = parse_export_data(sql)
    assert parsed is not None
    assert parsed.options == {
        "uri": "gs://bkt/a/it's-*.csv",
        "format": "CSV",
        "overwrite": True,
        "header": False,
        "field_delimiter": "\\t",
        "compression": "GZIP",
    }
    assert parsed.query == """SELECT 'x)' AS a, ") , (" AS b FROM t WHERE d = @run_date"""
    assert parse_export_data("SELECT 1") is None and not is_export_data("SELECT 'EXPORT DATA OPTIONS('")
    with pytest.raises(JobFailure, match="unclosed string"):
        parse_export_data("EXPORT DATA OPTIONS(uri='gs://x) AS SELECT 1")
    with pytest.raises(JobFailure, match="Expected keyword AS"):
        parse_export_data("EXPORT DATA OPTIONS(uri='gs://bkt/x-*.csv') SELECT 1")


def test_export_settings_defaults_follow_bigquery() -> None:
    extract = from_extract({"destinationUris": ["gs://bkt/x/t-*.csv"]})
    assert (extract.files.format, extract.files.compression, extract.files.header) == ("CSV", "NONE", True)
    assert extract.destination.bucket == "bkt" and extract.destination.shard(12) == "x/t-000000000012.csv"
    assert (
        from_extract({"destinationUris": ["gs://bkt/t.parquet"], "destinationFormat": "PARQUET"}).files.compression
        == "SNAPPY"
    )
    options = from_options({"uri": "gs://bkt/q-*.json", "format": "JSON"})
    assert (options.files.format, options.overwrite, options.files.header) == ("NEWLINE_DELIMITED_JSON", False, False)
    with pytest.raises(JobFailure, match="Unsupported compression DEFLATE for PARQUET"):
        from_options({"uri": "gs://bkt/q-*.parquet", "format": "PARQUET", "compression": "DEFLATE"})
    with pytest.raises(JobFailure, match="Unknown option: partition_by"):
        from_options({"uri": "gs://bkt/q-*.csv", "format": "CSV", "partition_by": "x"})


def test_jobs_past_the_running_limit_wait_pending_in_order_of_places_freed() -> None:
    """BigQuery queues jobs PENDING until it has room; the front runs at most ``max_running``."""
    store = JobStore(max_running=2)
    release = {name: threading.Event() for name in ("a", "b", "c")}
    running: list[str] = []

    def work(job):
        running.append(job.job_id)
        release[job.job_id].wait(30)
        return {}

    jobs = {}
    for name in ("a", "b", "c"):
        body = {"jobReference": {"jobId": name}, "configuration": {"extract": {}}}
        jobs[name], _ = store.insert(new_resource("p", body, "EXTRACT", "u"), work)
    _until(lambda: len(running) == 2)
    assert sorted(running) == ["a", "b"]
    assert jobs["c"].snapshot()["status"] == {"state": "PENDING"}  # no place: not started
    release["a"].set()
    assert jobs["a"].done.wait(30)
    _until(lambda: "c" in running)  # a's place went to c
    assert jobs["c"].snapshot()["status"] == {"state": "RUNNING"}
    release["b"].set()
    release["c"].set()
    assert jobs["b"].done.wait(30) and jobs["c"].done.wait(30)


def test_a_running_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="max_running: 0 must be at least 1"):
        JobStore(max_running=0)


def _until(condition, timeout_s: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)
