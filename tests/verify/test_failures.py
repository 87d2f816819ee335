"""``failed`` results are one per (run folder, destination, stage) and name the table.

The real upload function (transfer_sftp) runs in this process on each file's finalize event;
the runs are routed to SFTP partners the config does not have, a permanent failure per file.
"""

from __future__ import annotations

import pytest

from shared.errors import PermanentError
from shared.gcp import gcs
from shared.ids import Stage
from shared.messages import VerifyResult
from shared.stages.failures import report_failure
from shared.verify.markers import Kind, marker
from tests.verify.conftest import Run, VerifyStack

pytestmark = pytest.mark.stack

FILES = {f"orders_20250108-00000000000{n}.parquet": b"PAR1" + bytes([65 + n]) * 300 for n in range(4)}


def upload_all(vstack: VerifyStack, run: Run) -> None:
    for name in sorted(run.files):
        vstack.upload(run, name)


def failed(vstack: VerifyStack, run: Run) -> list[VerifyResult]:
    return [r for r in vstack.results_for(run) if r.status == "failed"]


def test_failing_deliveries_of_one_run_are_one_failed_result_per_destination(vstack: VerifyStack) -> None:
    run = vstack.new_run(FILES, ("sftp:nosuch", "sftp:gone"))
    upload_all(vstack, run)
    upload_all(vstack, run)  # redeliveries of the same events: still nothing new
    results = failed(vstack, run)
    assert sorted(str(r.destination) for r in results) == ["sftp:gone", "sftp:nosuch"]
    for result in results:
        assert result.stage == "transfer_sftp" and result.run_id == run.run_id
        assert result.source is not None and (result.source.dataset, result.source.table) == ("sales", "orders")
        assert f"no partner named '{str(result.destination).split(':')[1]}'" in (result.reason or "")
        assert result.date == "2025-01-08"
    reported = gcs.read_json(
        vstack.state_bucket, marker(run.folder.prefix, "sftp:nosuch", Kind.FAILED, "transfer_sftp")
    )
    assert reported["failures"] == 2 * len(FILES) and "nosuch" in reported["last_reason"]
    # The alert for the run names the table once per destination.
    texts = [a["text"] for a in vstack.alerts() if run.run_id in a.get("text", "")]
    assert texts and "sales.orders" in texts[0]


def test_another_run_or_table_gets_its_own_failed_result(vstack: VerifyStack) -> None:
    first = vstack.new_run(FILES, ("sftp:nosuch",))
    customers = {name.replace("orders", "customers"): data for name, data in FILES.items()}
    second = vstack.new_run(customers, ("sftp:nosuch",), table="customers")
    upload_all(vstack, first)
    upload_all(vstack, second)
    assert [r.destination for r in failed(vstack, first)] == ["sftp:nosuch"]
    [other] = failed(vstack, second)
    assert other.source is not None and other.source.table == "customers"


def test_a_verify_failure_is_once_per_stage_and_on_demand_always_answers(vstack: VerifyStack) -> None:
    run = vstack.new_run(FILES, ("sftp:nosuch",))
    upload_all(vstack, run)  # transfer_sftp: one
    vstack.manifest_finalized(run)  # verify (automatic): its own, once
    vstack.manifest_finalized(run)
    assert sorted(str(r.stage) for r in failed(vstack, run)) == ["transfer_sftp", "verify"]
    vstack.request({"run_id": run.run_id})  # on demand: answered every time
    vstack.request({"run_id": run.run_id})
    assert [str(r.stage) for r in failed(vstack, run)].count("verify:request") == 2


def test_a_failure_without_a_run_folder_is_reported_every_time(vstack: VerifyStack) -> None:
    for _ in range(2):
        error = PermanentError("box: folder 0: access denied (403)")
        error.context = {"destination": "box"}  # type: ignore[attr-defined]  # no run: not derivable
        report_failure(Stage.UPLOAD_BOX, error, message_id="m-no-run")
    mine = [r for r in vstack.results() if r.message_id == "m-no-run"]
    assert [r.status for r in mine] == ["failed", "failed"]
