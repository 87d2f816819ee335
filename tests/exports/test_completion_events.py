"""Exports finish by event, not by waiting (docs/exports.md, "Completion by event").

The BigQuery front keeps a held job RUNNING (``/_bqfront/holds``), so an export is "long" for as
long as a test wants, without sleeping: export_table starts the job and returns; the front
publishes BigQuery's audit-log entry when the job reaches DONE; the relay's conversion makes it
the CloudEvent Eventarc delivers; the same entry point (dispatch by trigger) writes the manifest.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from cloudevents.http import CloudEvent

from devstack.relay import audit_cloudevent
from shared import in_flight
from shared.gcp import gcs
from shared.stages.export import BUDGET_ENV, export_job_id
from shared.topology import EXPORT_SWEEPS, PUBSUB_PUBLISHED, VERIFY_RESULTS
from tests.exports.conftest import ExportsKit, Puller, manifest_of, query_task, table_task


def _front(kit: ExportsKit, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(kit.stack.bigquery_url + path, data=data, method=method)
    req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


class Hold:
    """Jobs whose id starts with ``prefix`` stay RUNNING in the front until released."""

    def __init__(self, kit: ExportsKit, prefix: str) -> None:
        self.kit, self.prefix = kit, prefix
        self.released = False

    @property
    def job_id(self) -> str:
        return self.prefix

    def __enter__(self) -> Hold:
        _front(self.kit, "POST", "/_bqfront/holds", {"prefix": self.prefix})
        return self

    def release(self) -> None:
        if not self.released:
            _front(self.kit, "DELETE", f"/_bqfront/holds/{self.prefix}")
            self.released = True

    def __exit__(self, *_exc: object) -> None:
        self.release()


@contextmanager
def held_export(kit: ExportsKit, task: Any) -> Iterator[Hold]:
    """export_table has started ``task``'s export job (its deterministic id is ``hold.job_id``) and
    returned: acked, no attempt spent waiting; the front keeps the job RUNNING until ``release()``."""
    with Hold(kit, export_job_id(task, kit.config)) as hold:
        kit.main.export_table(kit.table_export_event(task))
        yield hold


def completion_event(audit: Puller, job_id: str) -> CloudEvent:
    """The job's audit-log entry, as Eventarc (here: devstack/relay.py) delivers it."""
    (entry,) = audit.pull(lambda m: m["protoPayload"]["resourceName"].endswith(f"/jobs/{job_id}"), timeout_s=60)
    entry = {k: v for k, v in entry.items() if k != "_attributes"}
    message = {"data": base64.b64encode(json.dumps(entry).encode()).decode(), "messageId": uuid.uuid4().hex}
    event = audit_cloudevent(message)
    data = event.pop("data")
    return CloudEvent(event, data)


def job_state(kit: ExportsKit, job_id: str) -> str:
    return str(kit.bigquery().get_job(job_id).state)


def sweep_event(kit: ExportsKit) -> CloudEvent:
    message_id = uuid.uuid4().hex[:16]
    data = base64.b64encode(json.dumps({"sweep": True}).encode()).decode()
    attributes = {
        "specversion": "1.0",
        "id": message_id,
        "source": f"//pubsub.googleapis.com/projects/{kit.stack.project}/topics/{EXPORT_SWEEPS}",
        "type": PUBSUB_PUBLISHED,
        "datacontenttype": "application/json",
    }
    return CloudEvent(attributes, {"message": {"data": data, "messageId": message_id}})


def test_a_long_export_acks_at_once_and_its_completion_event_writes_the_manifest(
    kit: ExportsKit, audit: Puller
) -> None:
    task = table_task(kit, "products", "PARQUET")  # held: "long" whatever its size
    with held_export(kit, task) as hold:
        assert job_state(kit, hold.job_id) == "RUNNING"
        assert manifest_of(kit, task) is None
        assert [o.name for o in gcs.list_prefix(kit.bucket, task.prefix)] == [task.prefix + "_run.json"]
        hold.release()
        event = completion_event(audit, hold.job_id)
    assert event["type"] == "google.cloud.audit.log.v1.written"
    assert event["subject"] == f"bigquery.googleapis.com/projects/{kit.stack.project}/jobs/{hold.job_id}"
    assert event.data["protoPayload"]["metadata"]["jobChange"]["after"] == "DONE"
    kit.main.export_table(event)
    manifest = manifest_of(kit, task)
    assert manifest is not None and manifest.job_id == hold.job_id
    assert manifest.row_count == kit.source_count("products")
    assert manifest.files and all(f.name.startswith("products_20250108-") for f in manifest.files)

    # the same event again, and again under another id: nothing is rewritten
    generation = gcs.stat(kit.bucket, task.prefix + "_manifest.json").generation
    kit.main.export_table(event)
    kit.main.export_table(completion_event_again(event))
    assert gcs.stat(kit.bucket, task.prefix + "_manifest.json").generation == generation


def completion_event_again(event: CloudEvent) -> CloudEvent:
    attributes = dict(event.get_attributes())
    attributes["id"] = uuid.uuid4().hex
    return CloudEvent(attributes, event.data)


def test_a_query_export_finishes_by_its_completion_event_too(kit: ExportsKit, audit: Puller) -> None:
    import datetime as dt

    task = query_task(kit, dt.date(2025, 1, 8))
    with held_export(kit, task) as hold:
        assert job_state(kit, hold.job_id) == "RUNNING" and manifest_of(kit, task) is None
        hold.release()
        event = completion_event(audit, hold.job_id)
    kit.main.export_table(event)
    manifest = manifest_of(kit, task)
    assert manifest is not None
    assert manifest.row_count == kit.source_count("orders", where_date=dt.date(2025, 1, 8))


def test_a_failed_job_is_reported_once_with_bigquerys_reason(kit: ExportsKit, audit: Puller) -> None:
    results = kit.subscribe(VERIFY_RESULTS)
    task = table_task(kit, "customers", "CSV")  # CSV of a nested table: BigQuery refuses it
    with held_export(kit, task) as hold:
        assert results.drain(settle_s=1.0) == []  # nothing to report yet
        hold.release()
        event = completion_event(audit, hold.job_id)
    assert event.data["protoPayload"]["metadata"]["jobChange"]["job"]["jobStatus"]["errorResult"]["code"] == 3
    kit.main.export_table(event)
    kit.main.export_table(completion_event_again(event))  # a duplicate: not reported again
    kit.main.export_table(kit.table_export_event(task))  # nor by a redelivered request
    (result,) = results.pull(lambda m: m.get("run_id") == task.run_id, count=1)
    assert result["status"] == "failed" and result["stage"] == "export_table"
    assert "invalid" in result["reason"] and "nested schema" in result["reason"]
    assert manifest_of(kit, task) is None
    assert [m for m in results.drain() if m.get("run_id") == task.run_id] == [result]


def test_a_lost_completion_event_is_covered_by_the_finalize_sweep(kit: ExportsKit, audit: Puller) -> None:
    task = table_task(kit, "products", "AVRO")
    with held_export(kit, task) as hold:
        kit.main.export_table(sweep_event(kit))  # the job still runs: the sweep leaves it
        assert manifest_of(kit, task) is None
        hold.release()
        completion_event(audit, hold.job_id)  # published, then lost: never delivered
    assert kit.bigquery().get_job(hold.job_id).result().state == "DONE"
    kit.main.export_table(sweep_event(kit))
    manifest = manifest_of(kit, task)
    assert manifest is not None and manifest.job_id == hold.job_id
    assert manifest.row_count == kit.source_count("products")


def test_the_finalize_sweep_lists_on_from_where_the_last_one_stopped(kit: ExportsKit, audit: Puller) -> None:
    """A long export listing is read in parts across sweeps (docs/capacity.md): a sweep lists from
    where the last one stopped and, reaching the end in time, goes on from the beginning, so a
    run folder before that point is finished too; then the next sweep starts from the beginning."""
    from shared.stages.export import finalize_cursor

    task = table_task(kit, "products", "AVRO")
    with held_export(kit, task) as hold:
        hold.release()
        completion_event(audit, hold.job_id)  # published, then lost: never delivered
    cursor = finalize_cursor(kit.config.state_bucket_name, kit.config.export_prefix)
    cursor.save(task.prefix + "~", dt.datetime.now(dt.UTC))  # the last sweep stopped past this run's folder
    kit.main.export_table(sweep_event(kit))
    manifest = manifest_of(kit, task)
    assert manifest is not None and manifest.job_id == hold.job_id
    assert cursor.read() == ""


def test_the_finalize_sweeps_listing_and_work_stop_in_order_before_export_table_does() -> None:
    from shared.stages import export
    from shared.topology import FUNCTIONS

    timeout = {f.name: f for f in FUNCTIONS}["export_table"].timeout_s
    assert 0 < export.SWEEP_LISTING_S < export.SWEEP_BUDGET_S < export.SWEEP_BUDGET_S + export.SWEEP_LOOK_S < timeout


def test_the_sweep_never_starts_an_export(exports_env: ExportsKit) -> None:
    """A run folder whose job does not exist (its table-exports message still in flight) is left alone."""
    from shared.stages.export import run_folder

    kit = exports_env
    task = table_task(kit, "orders", "PARQUET")
    folder = run_folder(task, kit.config)
    assert gcs.write_if_absent(kit.bucket, folder.run_name, task.to_json(), "application/json")
    kit.main.export_table(sweep_event(kit))
    assert [o.name for o in gcs.list_prefix(kit.bucket, task.prefix)] == [task.prefix + "_run.json"]
    from google.api_core.exceptions import NotFound

    with pytest.raises(NotFound):
        kit.bigquery().get_job(export_job_id(task, kit.config))


def test_audit_entries_of_other_jobs_are_acked_and_ignored(exports_env: ExportsKit, audit: Puller) -> None:
    kit = exports_env
    results = kit.subscribe(VERIFY_RESULTS)
    job_id = f"other_{uuid.uuid4().hex[:10]}"
    from google.cloud import bigquery

    destination = f"gs://{kit.bucket}/elsewhere/{job_id}-*.json"
    kit.bigquery().extract_table(
        f"{kit.stack.project}.sales.products",  # small: the job is not what is tested
        destination,
        job_id=job_id,
        job_config=bigquery.ExtractJobConfig(destination_format="NEWLINE_DELIMITED_JSON"),
    ).result()
    kit.main.export_table(completion_event(audit, job_id))  # not ours: nothing happens, no report
    assert results.drain(settle_s=1.0) == []


def test_a_query_job_bqemulator_runs_has_its_audit_entry_too(exports_env: ExportsKit, audit: Puller) -> None:
    """BigQuery writes an entry for every job it finishes, queries included (an export's
    fingerprint job is one): the front publishes one for each job bqemulator runs. Held, such a job
    is RUNNING from its insert on (BigQuery answers an insert at once) and runs when released."""
    kit = exports_env
    ok, bad = f"q_ok_{uuid.uuid4().hex[:10]}", f"q_bad_{uuid.uuid4().hex[:10]}"
    with Hold(kit, ok) as hold:
        job = kit.bigquery().query("SELECT 41 + 1 AS answer", job_id=ok, job_retry=None)
        assert job.state == "RUNNING" and kit.bigquery().get_job(ok).state == "RUNNING"
        assert [e for e in audit.drain(settle_s=1.0) if e["protoPayload"]["resourceName"].endswith(ok)] == []
        hold.release()
        assert [row["answer"] for row in job.result(timeout=60)] == [42]
    entry = completion_event(audit, ok).data["protoPayload"]
    assert entry["resourceName"] == f"projects/{kit.stack.project}/jobs/{ok}"
    change = entry["metadata"]["jobChange"]
    assert change["after"] == "DONE" and change["job"]["jobConfig"]["type"] == "QUERY"
    assert change["job"]["jobConfig"]["queryConfig"]["query"] == "SELECT 41 + 1 AS answer"
    assert "errorResult" not in change["job"]["jobStatus"]

    failed = kit.bigquery().query("SELECT x FROM nowhere.nothing", job_id=bad, job_retry=None)
    with pytest.raises(Exception, match="nowhere"):
        failed.result(timeout=60)
    event = completion_event(audit, bad)
    assert event.data["severity"] == "ERROR"
    assert event.data["protoPayload"]["metadata"]["jobChange"]["job"]["jobStatus"]["errorResult"]["code"] == 5


def test_a_waiting_request_gives_its_thread_back_when_the_process_is_full(
    exports_env: ExportsKit, audit: Puller, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handler waits on its job (budget 600 s here) only while the process has a request thread
    to spare, and one waiter gives its thread back per request that fills the process: the one
    served longest. With THREADS=3 the third request fills it: the first acknowledges with its job
    still RUNNING (its completion event finishes the run); the second keeps waiting, and so does
    the third once it waits (a thread to spare again); each writes its manifest itself."""
    kit = exports_env
    monkeypatch.setenv(BUDGET_ENV, "600")
    monkeypatch.setenv(in_flight.THREADS_ENV, str(in_flight.serving_now() + 3))
    # Small tables only: the 200,000 rows of orders took 19 s to export on an idle machine and
    # nearly a minute in CI, against the 60 s each handler is given to finish.
    tasks = [
        table_task(kit, "products", "PARQUET"),
        table_task(kit, "customers", "AVRO"),
        table_task(kit, "products", "AVRO"),
    ]
    with (
        Hold(kit, export_job_id(tasks[0], kit.config)) as first,
        Hold(kit, export_job_id(tasks[1], kit.config)) as second,
        Hold(kit, export_job_id(tasks[2], kit.config)) as third,
    ):
        handlers = [threading.Thread(target=kit.main.export_table, args=(kit.table_export_event(t),)) for t in tasks]
        for handler, hold in zip(handlers[:2], (first, second), strict=True):
            handler.start()
            _until(lambda hold=hold: _exists(kit, hold.job_id))
        assert handlers[0].is_alive() and handlers[1].is_alive()  # two of three threads busy: they wait
        handlers[2].start()
        # far below the 600 s budget (60 s was too short once on two cores shared with other suites)
        handlers[0].join(180)
        assert not handlers[0].is_alive()
        assert job_state(kit, first.job_id) == "RUNNING" and manifest_of(kit, tasks[0]) is None
        _until(lambda: _exists(kit, third.job_id))
        assert handlers[1].is_alive() and handlers[2].is_alive()  # one let go for one filling
        for handler, hold, task in zip(handlers[1:], (second, third), tasks[1:], strict=True):
            hold.release()
            handler.join(180)
            assert not handler.is_alive()
            manifest = manifest_of(kit, task)
            assert manifest is not None and manifest.job_id == hold.job_id
        first.release()
    kit.main.export_table(completion_event(audit, first.job_id))
    manifest = manifest_of(kit, tasks[0])
    assert manifest is not None and manifest.job_id == first.job_id


def _exists(kit: ExportsKit, job_id: str) -> bool:
    from google.api_core.exceptions import NotFound

    try:
        kit.bigquery().get_job(job_id)
    except NotFound:
        return False
    return True


def _until(condition: Any, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_a_job_started_before_the_job_id_gained_the_run_folder_still_finishes_its_run(
    kit: ExportsKit, audit: Puller
) -> None:
    """Versions before 2026-12-04 named the export job without the run folder. A job they started
    that ends after the deploy must finish its run by its completion entries, not be ignored."""
    import time

    from google.api_core.exceptions import NotFound

    from shared.gcp.bigquery import BigQueryWarehouse, job_id_for
    from shared.gcp.fingerprint_job import fingerprint_job_id
    from shared.stages.export import finalize_job, run_export

    task = table_task(kit, "products", "AVRO")
    legacy = job_id_for(task.run_id, task.source)
    assert legacy != export_job_id(task, kit.config)
    with Hold(kit, legacy):  # what the old version started, then acknowledged
        assert run_export(task, kit.config, BigQueryWarehouse(kit.bigquery()), time.monotonic(), job_id=legacy) is None
    manifest = finalize_job(completion_event(audit, legacy), kit.config)
    if manifest is None:  # the fingerprint job it started runs on: its own entry finishes the run
        manifest = finalize_job(completion_event(audit, fingerprint_job_id(legacy)), kit.config)
    assert manifest is not None and manifest == manifest_of(kit, task)
    assert manifest.job_id == legacy and manifest.row_count == kit.source_count("products")
    with pytest.raises(NotFound):  # attached to the old job: the table was not exported twice
        kit.bigquery().get_job(export_job_id(task, kit.config))


def test_the_entry_of_a_restore_job_is_ignored_without_reading_the_job(exports_env: ExportsKit, audit: Puller) -> None:
    """``offsite_restore_…`` jobs (restore, the drill) are started by another identity: reading
    one is a 403 in the cloud (jobs.get is for the job's creator), which was reported as a
    ``failed`` export after every drilled table."""
    from shared.gcp.bigquery import BigQueryWarehouse
    from shared.stages.export import finalize_job

    class Watched(BigQueryWarehouse):
        def __init__(self, client: Any) -> None:
            super().__init__(client)
            self.looked_up: list[str] = []

        def export_destination(self, job_id: str, location: str | None) -> str | None:
            self.looked_up.append(job_id)
            return super().export_destination(job_id, location)

    kit = exports_env
    job_id = f"offsite_restore_r1_{uuid.uuid4().hex[:8]}"
    kit.bigquery().query("SELECT 1 AS one", job_id=job_id, job_retry=None).result(timeout=60)
    wh = Watched(kit.bigquery())
    assert finalize_job(completion_event(audit, job_id), kit.config, wh=wh) is None
    assert wh.looked_up == []
