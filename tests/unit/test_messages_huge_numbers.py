"""A number longer than Python converts (4300 digits) is bad input like any other: rejected,
naming the problem. json.loads raised a bare ValueError, so the stage answered 500 and Pub/Sub
redelivered the message until it was dead-lettered."""

from __future__ import annotations

import sys

import pytest

from shared.errors import RejectedInput
from shared.messages import DeliveryReceipt, ExportRequest, TableExport, VerifyRequest, VerifyResult

HUGE = b"1" * (sys.get_int_max_str_digits() + 700)


@pytest.mark.parametrize("model", [ExportRequest, TableExport, DeliveryReceipt, VerifyRequest, VerifyResult])
@pytest.mark.parametrize("field", [b"schema_version", b"surprise"])
def test_a_number_of_thousands_of_digits_is_rejected_input(model: type, field: bytes) -> None:
    body = b'{"dataset": "sales", "' + field + b'": ' + HUGE + b"}"
    with pytest.raises(RejectedInput) as rejected:
        model.from_json(body)
    assert str(rejected.value) == (
        f"{model.KIND}: a number in the JSON has more than {sys.get_int_max_str_digits()} digits; no field takes one"
    )


def test_a_long_negative_number_is_rejected_too() -> None:
    with pytest.raises(RejectedInput, match="a number in the JSON has more than"):
        ExportRequest.from_json(b'{"dataset": "sales", "schema_version": -' + HUGE + b"}")
