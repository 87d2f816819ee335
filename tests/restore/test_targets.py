"""Restore targets: what ``offsite restore --to`` and the drill's scratch tables may be named."""

from __future__ import annotations

import pytest

from shared.errors import PermanentError
from shared.message_fields import RUN_ID_RE
from shared.restore.drill import scratch_table
from shared.restore.drill_records import DrillPick
from shared.restore.load import parse_target


@pytest.mark.parametrize("target", ["p.d.orders", "my-project.sales.orders-restored", "example.com:p.d.t_1"])
def test_bigquery_table_names_are_accepted(target: str) -> None:
    assert parse_target(target) == target


@pytest.mark.parametrize("target", ["d.orders", "p.sales-eu.orders", "p.d.orders;drop", "p.d.my table", "p.d."])
def test_other_targets_are_refused_naming_the_value_and_the_form(target: str) -> None:
    with pytest.raises(PermanentError) as raised:
        parse_target(target)
    assert f"restore --to: {target!r} is not PROJECT.DATASET.TABLE" in str(raised.value)


def test_a_drill_of_a_run_id_with_dashes_gets_a_valid_scratch_table() -> None:
    run_id = "nightly-2025-01-08"  # a run id the pipeline accepts
    assert RUN_ID_RE.match(run_id)
    target = scratch_table("p.drill_scratch", DrillPick(table="orders", run_id=run_id), "abcd1234")
    assert target == "p.drill_scratch.drill_orders_nightly_2025_01_08_abcd1234"
    assert parse_target(target) == target
