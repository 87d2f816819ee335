"""BigQuery's audit-log entry of a job → the CloudEvent Eventarc delivers → what export_table reads.

The entry is the one the local BigQuery front writes (devstack/bqfront/audit.py), wrapped by the
relay (devstack/relay.py) exactly as an Eventarc Cloud Audit Logs trigger delivers it.
"""

from __future__ import annotations

import base64
import json

import pytest

from devstack.bqfront.audit import log_entry
from devstack.relay import audit_cloudevent
from shared.errors import RejectedInput
from shared.events import BigQueryJobEvent, parse, parse_bigquery_job, trigger_name
from shared.topology import AUDIT_LOG_WRITTEN, BQ_JOB_COMPLETED, BQ_JOB_TRIGGER, function


def job_resource(error: dict[str, str] | None = None) -> dict:
    status: dict = {"state": "DONE"}
    if error:
        status.update(errorResult=error, errors=[error])
    return {
        "jobReference": {"projectId": "p1", "jobId": "offsite_r1_sales_orders_abcd1234_export", "location": "EU"},
        "configuration": {
            "jobType": "EXTRACT",
            "extract": {
                "sourceTable": {"projectId": "p1", "datasetId": "sales", "tableId": "orders"},
                "destinationUris": ["gs://b/exports/sales/orders/20250108/r1/orders_20250108-*.parquet"],
            },
        },
        "status": status,
        "statistics": {"creationTime": "1736330400000", "startTime": "1736330401000", "endTime": "1736330402000"},
        "user_email": "sa@p1.iam.gserviceaccount.com",
    }


def as_event(resource: dict) -> dict:
    entry = log_entry(resource)
    return audit_cloudevent({"data": base64.b64encode(json.dumps(entry).encode()).decode(), "messageId": "42"})


def test_the_completion_entry_becomes_eventarcs_audit_log_cloudevent() -> None:
    event = as_event(job_resource())
    assert event["type"] == AUDIT_LOG_WRITTEN == "google.cloud.audit.log.v1.written"
    assert event["source"] == "//cloudaudit.googleapis.com/projects/p1/logs/data_access"
    assert event["subject"] == "bigquery.googleapis.com/projects/p1/jobs/offsite_r1_sales_orders_abcd1234_export"
    assert (event["servicename"], event["methodname"]) == (
        "bigquery.googleapis.com",
        "google.cloud.bigquery.v2.JobService.InsertJob",
    )
    assert dict(BQ_JOB_COMPLETED.filters) == {"serviceName": event["servicename"], "methodName": event["methodname"]}
    change = event["data"]["protoPayload"]["metadata"]["jobChange"]
    assert change["after"] == "DONE"
    assert change["job"]["jobName"] == "projects/p1/locations/EU/jobs/offsite_r1_sales_orders_abcd1234_export"
    assert change["job"]["jobConfig"]["extractConfig"]["destinationUris"] == [
        "gs://b/exports/sales/orders/20250108/r1/orders_20250108-*.parquet"
    ]


def test_export_table_reads_the_job_its_location_and_state() -> None:
    event = as_event(job_resource())
    assert trigger_name(event) == BQ_JOB_TRIGGER == "bigquery-job-completed"
    assert (
        parse(event)
        == parse_bigquery_job(event)
        == BigQueryJobEvent(
            project="p1", job_id="offsite_r1_sales_orders_abcd1234_export", location="EU", state="DONE", event_id="42"
        )
    )
    assert BQ_JOB_COMPLETED in function("export_table").triggers


def test_a_failed_job_carries_bigquerys_error() -> None:
    event = as_event(
        job_resource({"reason": "invalid", "message": "Operation cannot be performed on a nested schema."})
    )
    status = event["data"]["protoPayload"]["metadata"]["jobChange"]["job"]["jobStatus"]
    assert status["errorResult"] == {"code": 3, "message": "Operation cannot be performed on a nested schema."}
    assert event["data"]["severity"] == "ERROR"


def test_an_insertion_entry_has_its_own_state() -> None:
    event = as_event(job_resource())
    event["data"]["protoPayload"]["metadata"]["jobChange"]["after"] = "RUNNING"
    assert parse_bigquery_job(event).state == "RUNNING"


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda d: d.pop("protoPayload"), "protoPayload is missing"),
        (lambda d: d["protoPayload"].update(serviceName="storage.googleapis.com"), "is not BigQuery"),
        (lambda d: d["protoPayload"].update(resourceName="projects/p1/datasets/d"), "is not projects/P/jobs/ID"),
    ],
)
def test_malformed_entries_are_rejected(change, needle: str) -> None:  # type: ignore[no-untyped-def]
    event = as_event(job_resource())
    event.pop("resourcename")
    change(event["data"])
    with pytest.raises(RejectedInput, match=needle):
        parse_bigquery_job(event)
