"""Typed seams in messages: DestinationId round-trips, Status/Stage on the wire, VerifyResult.source a Source."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from shared.errors import RejectedInput
from shared.ids import DestinationId, Stage, Status
from shared.messages import DeliveryReceipt, ExportRequest, Source, TableExport, VerifyRequest, VerifyResult

DATA = Path(__file__).resolve().parents[1] / "data"


def saved_message(name: str) -> bytes:
    return base64.b64decode(json.loads((DATA / name).read_text())["data"]["message"]["data"])


def test_saved_table_export_is_written_back_byte_for_byte() -> None:
    raw = saved_message("pubsub_table_export.json")
    task = TableExport.from_json(raw)
    assert task.to_json() == raw
    assert all(isinstance(d, DestinationId) for d in task.destinations)
    assert [(d.kind, d.name) for d in task.destinations] == [("box", ""), ("sftp", "local")]


@pytest.mark.parametrize("name", ["pubsub_export_request.json", "pubsub_export_request_query.json"])
def test_saved_export_requests_parse_and_round_trip(name: str) -> None:
    request = ExportRequest.from_json(saved_message(name))
    assert ExportRequest.from_json(request.to_json()) == request


def test_destination_ids_round_trip_in_every_message() -> None:
    request = ExportRequest.from_json(json.dumps({"dataset": "sales", "destinations": "box, sftp:acme"}))
    assert request.destinations == (DestinationId("box"), DestinationId("sftp", "acme"))
    assert json.loads(request.to_json())["destinations"] == ["box", "sftp:acme"]
    verify = VerifyRequest.from_json(json.dumps({"run_id": "r1", "destination": "sftp:acme"}))
    assert isinstance(verify.destination, DestinationId) and verify.destination.name == "acme"
    assert json.loads(verify.to_json())["destination"] == "sftp:acme"
    receipt = DeliveryReceipt(
        run_id="r1", bucket="b", object="o", generation=1, destination="memory", remote_path="p", size=1, sha1="a" * 40
    )
    assert isinstance(receipt.destination, DestinationId) and receipt.destination.kind == "memory"
    assert DeliveryReceipt.from_json(receipt.to_json()) == receipt


def test_status_and_stage_are_enums_in_code_and_strings_on_the_wire() -> None:
    result = VerifyResult(status="rejected", stage="fan_out", reason="bad")
    assert result.status is Status.REJECTED and result.stage is Stage.FAN_OUT
    assert result.status == "rejected" and result.status.is_final_failure
    wire = json.loads(result.to_json())
    assert wire["status"] == "rejected" and wire["stage"] == "fan_out" and wire["reason"] == "bad"
    assert VerifyResult.from_json(result.to_json()) == result
    swept = VerifyResult(status="incomplete", stage="verify:sweep")  # verify's trigger-specific stages
    assert swept.stage is Stage.VERIFY_SWEEP and json.loads(swept.to_json())["stage"] == "verify:sweep"


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"status": "fine"}, "verify result.status: 'fine' is not one of 'in_sync', 'mismatch'"),
        ({"stage": "upload"}, "verify result.stage: 'upload' is not one of 'fan_out'"),
        ({"destination": "s3:x"}, "verify result.destination: 's3:x' is not a destination name"),
        ({"source": {"mode": "table", "project": "p"}}, "verify result.source.dataset: required field is missing"),
        ({"files_expected": "2"}, "verify result.files_expected: expected an integer, got '2'"),
    ],
)
def test_bad_verify_results_name_field_value_and_expectation(patch: dict, needle: str) -> None:
    with pytest.raises(RejectedInput) as info:
        VerifyResult.from_json(json.dumps({"status": "in_sync", **patch}))
    assert needle in str(info.value)


def test_verify_result_source_is_typed_and_its_json_unchanged() -> None:
    folder_source = Source(mode="query", project="", export="product_data")  # project unknown from a folder
    result = VerifyResult(status="incomplete", run_id="r1", source=folder_source)
    assert result.source is not None and result.source.label == "export:product_data"
    assert json.loads(result.to_json())["source"] == {"mode": "query", "export": "product_data"}
    as_dict = VerifyResult(status="in_sync", source={"mode": "table", "project": "p", "dataset": "s", "table": "t"})
    assert isinstance(as_dict.source, Source) and as_dict.source.label == "s.t"
    assert json.loads(as_dict.to_json())["source"] == {"mode": "table", "project": "p", "dataset": "s", "table": "t"}
    parsed = VerifyResult.from_json(result.to_json())
    assert parsed == result


def test_messages_are_frozen_and_copied_with_model_copy() -> None:
    result = VerifyResult(status="in_sync")
    with pytest.raises(Exception, match="frozen"):
        result.status = Status.FAILED  # type: ignore[misc]
    assert result.model_copy(update={"finished_at": "t"}).finished_at == "t" and result.finished_at is None


def test_table_export_requires_the_source_project() -> None:
    body = {
        "run_id": "r1",
        "date": "2025-01-08",
        "source": {"mode": "table", "dataset": "s", "table": "t"},
        "format": "CSV",
        "destinations": ["box"],
        "prefix": "x/",
    }
    with pytest.raises(RejectedInput, match=r"table export\.source\.project: required field is missing"):
        TableExport.from_json(json.dumps(body))


def test_several_problems_are_all_named() -> None:
    with pytest.raises(RejectedInput) as info:
        ExportRequest.from_json(json.dumps({"dataset": "a.b", "run_id": "-x", "format": "XML"}))
    parts = str(info.value).splitlines()
    assert [p.split(":")[0] for p in parts] == [
        "export request.dataset",
        "export request.format",
        "export request.run_id",
    ]
