"""POST /sync with a number of thousands of digits answers 400 naming the problem, not 500
("unexpected failure"): the body is parsed as export-requests messages are."""

from __future__ import annotations

import sys

from tests.http.conftest import Trigger


def test_a_body_with_a_huge_number_answers_400(trigger: Trigger) -> None:
    huge = "1" * (sys.get_int_max_str_digits() + 1)
    for path in ("/sync", "/sync/sales"):
        reply = trigger.call("POST", path, '{"dataset": "sales", "schema_version": ' + huge + "}")
        assert reply.status == 400, reply.body
        assert reply.body == {
            "error": f"export request: a number in the JSON has more than {sys.get_int_max_str_digits()} digits; "
            "no field takes one"
        }
