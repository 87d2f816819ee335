"""Receipt / verify-request / verify-result contracts (export request parsing: test_messages_export.py)."""

from __future__ import annotations

import json

import pytest

from shared.errors import RejectedInput
from shared.manifest import Manifest, ManifestFile
from shared.messages import DeliveryReceipt, Source, VerifyRequest, VerifyResult

RECEIPT = {
    "run_id": "r1",
    "bucket": "b",
    "object": "exports/sales/orders/20250108/r1/x.parquet",
    "generation": 5,
    "destination": "sftp:acme",
    "remote_path": "sales/orders/20250108/r1/x.parquet",
    "size": 10,
    "sha1": "a" * 40,
}


def test_receipt_round_trip() -> None:
    receipt = DeliveryReceipt.from_json(json.dumps(RECEIPT))
    assert receipt.destination == "sftp:acme" and receipt.status == "uploaded"
    again = DeliveryReceipt.from_json(receipt.to_json())
    assert again == receipt
    assert json.loads(receipt.to_json())["schema_version"] == 1


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"size": "10"}, r"delivery receipt\.size: expected an integer, got '10'"),
        ({"sha1": "xyz"}, r"delivery receipt\.sha1: 'xyz' does not match"),
        (
            {"destination": "ftp:x"},
            r"delivery receipt\.destination: 'ftp:x' is not a destination name \(expected one of box, memory",
        ),
        ({"schema_version": 2}, r"delivery receipt\.schema_version: 2 is not supported"),
        ({"colour": "red"}, r"delivery receipt: unknown field 'colour'"),
    ],
)
def test_bad_receipts(patch: dict, message: str) -> None:
    with pytest.raises(RejectedInput, match=message):
        DeliveryReceipt.from_json(json.dumps({**RECEIPT, **patch}))


@pytest.mark.parametrize(
    "body",
    [
        {"run_id": "r1"},
        {"run_id": "r1", "destination": "box"},
        {"dataset": "sales", "table": "orders", "date": "2025-01-08"},
        {"export": "product_data", "date": "2025-01-08"},
        {"sweep": True},
    ],
)
def test_verify_request_forms(body: dict) -> None:
    assert VerifyRequest.from_json(json.dumps(body)).to_dict()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "give exactly one of"),
        ({"run_id": "r1", "sweep": True}, "give exactly one of"),
        ({"dataset": "sales", "table": "orders"}, "dataset, table and date are required together"),
        ({"export": "e"}, r"verify request\.date: required with 'export'"),
        ({"run_id": "r1; DROP TABLE x"}, r"verify request\.run_id: 'r1; DROP TABLE x' does not match"),
        ({"sweep": "yes"}, r"verify request\.sweep: expected true or false, got 'yes'"),
        ({"export": "e", "date": "2025-02-30"}, r"verify request\.date: '2025-02-30' is not a valid calendar date"),
    ],
)
def test_bad_verify_requests(body: dict, message: str) -> None:
    with pytest.raises(RejectedInput, match=message):
        VerifyRequest.from_json(json.dumps(body))


def test_verify_result_round_trip() -> None:
    result = VerifyResult(
        status="mismatch", destination="box", run_id="r1", check="sha1", missing=["a"], files_expected=2
    )
    assert VerifyResult.from_json(result.to_json()) == result


def test_manifest_round_trip_and_rejects_unknown_version() -> None:
    manifest = Manifest(
        run_id="r1",
        source=Source(mode="table", project="p", dataset="sales", table="orders"),
        date="2025-01-08",
        bucket="b",
        prefix="exports/sales/orders/20250108/r1/",
        format="PARQUET",
        compression="SNAPPY",
        file_name="orders_{YYYYMMDD}-*.parquet",
        destinations=("box",),
        job_id="offsite_r1_sales_orders",
        row_count=3,
        schema=[{"name": "id", "type": "INTEGER"}],
        files=(ManifestFile("x.parquet", "exports/sales/orders/20250108/r1/x.parquet", 10, "md5", "crc"),),
        created_at="2025-01-08T02:00:00Z",
    )
    assert Manifest.from_json(manifest.to_json()) == manifest
    assert manifest.total_bytes == 10
    bad = json.loads(manifest.to_json())
    bad["schema_version"] = 99
    with pytest.raises(RejectedInput, match=r"manifest\.schema_version: 99 is not supported"):
        Manifest.from_json(json.dumps(bad))
    with pytest.raises(RejectedInput, match="not valid JSON"):
        Manifest.from_json(b"{not json")
    for unreadable in (b'{"schema_version": 1' + b"9" * 5_000 + b"}", b"[" * 100_000 + b"]" * 100_000):
        with pytest.raises(RejectedInput, match="manifest: not valid JSON"):  # was a ValueError / RecursionError
            Manifest.from_json(unreadable)


@pytest.mark.parametrize("depth", [20, 5_000])
def test_deeply_nested_json_is_rejected_not_retried(depth: int) -> None:
    """A 10 KB request of nested arrays used to raise RecursionError (retried, then dead-lettered)."""
    from shared.messages import ExportRequest

    data = b'{"dataset": ' + b"[" * depth + b"]" * depth + b"}"
    with pytest.raises(RejectedInput, match="nested"):
        ExportRequest.from_json(data)
