"""POST /sync, GET /runs/<id>, POST /verify/<id> through the running http_trigger, end to end.

The request the function publishes is handled by the real fan_out, export_table, upload_box,
transfer_sftp and verify processes; the answers are read from what verify reported.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from shared.errors import RejectedInput
from shared.message_fields import RUN_ID_RE
from shared.messages import ExportRequest
from tests.http.conftest import REFUSALS, Trigger, refuse_history

DESTINATIONS = {"box", "sftp:local"}


def _poll_run(trigger: Trigger, run_id: str, until: Any, timeout_s: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        reply = trigger.call("GET", f"/runs/{run_id}")
        if reply.status == 200 and until(reply.body):
            return reply.body
        assert time.monotonic() < deadline, f"run {run_id} never got there: {reply.status} {reply.body}"
        time.sleep(1.0)


def test_sync_with_wait_runs_the_export_end_to_end_and_answers_seed_000s_shape(trigger: Trigger) -> None:
    reply = trigger.call("POST", "/sync/sales?wait=400", {"tables": "products"})
    assert reply.status == 200, reply.body
    body = reply.body
    assert body["dataset"] == "sales" and body["complete"] is True
    assert (body["success"], body["errors"]) == (1, 0)
    (table,) = body["tables"]
    assert table["table"] == "products" and table["status"] == "in_sync"
    assert set(table["destinations"]) == DESTINATIONS
    for dest in table["destinations"].values():
        assert dest["status"] == "in_sync" and dest["check"] == "sha1" and dest["files_present"] == 1

    # GET /runs/<run_id> says the same, from the run's folders and results
    status = trigger.call("GET", f"/runs/{body['run_id']}")
    assert status.status == 200
    assert status.body["complete"] is True and status.body["success"] == 1
    assert status.body["tables"][0]["source"] == "sales.products"
    assert {d: v["status"] for d, v in status.body["tables"][0]["destinations"].items()} == {
        "box": "in_sync",
        "sftp:local": "in_sync",
    }

    # POST /verify/<run_id> publishes a verify request; verify reports again (stage verify:request)
    again = trigger.call("POST", f"/verify/{body['run_id']}?destination=box")
    assert again.status == 202
    assert again.body["topic"] == "verify-requests"
    assert again.body["request"] == {
        "run_id": body["run_id"],
        "destination": "box",
        "schema_version": 1,
        "sweep": False,
    }
    from shared.http_trigger.progress import read_results
    from shared.ids import Stage

    deadline = time.monotonic() + 120
    while not any(
        r.stage == Stage.VERIFY_REQUEST for r in read_results(trigger.config, body["run_id"], _an_hour_ago())
    ):
        assert time.monotonic() < deadline, "no verify:request result"
        time.sleep(1.0)

    # later results about its copies (a restore drill, retention) leave the run complete
    from shared.messages import VerifyResult
    from shared.reporting.results import report

    source = status.body["tables"][0]["source"]
    later = {
        "run_id": body["run_id"],
        "source": {"mode": "table", "project": trigger.config.project, "dataset": "sales", "table": "products"},
    }
    assert source == "sales.products"
    report(
        VerifyResult(status="restore_verified", stage=Stage.RESTORE_DRILL, destination="box", **later),
        config=trigger.config,
    )
    report(VerifyResult(status="pruned", stage=Stage.PRUNE, destination="sftp:local", **later), config=trigger.config)
    after = trigger.call("GET", f"/runs/{body['run_id']}").body
    assert after["complete"] is True and after["success"] == 1, after
    assert {d: v["status"] for d, v in after["tables"][0]["destinations"].items()} == {
        "box": "in_sync",
        "sftp:local": "in_sync",
    }


def _an_hour_ago() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)


def test_a_wait_that_runs_out_answers_202_with_what_is_pending(trigger: Trigger) -> None:
    """wait=0: the answer comes before any hop of the pipeline could have reported."""
    reply = trigger.call("POST", "/sync/sales?wait=0", {"tables": "products"})
    assert reply.status == 202
    assert reply.body["complete"] is False and (reply.body["success"], reply.body["errors"]) == (0, 0)
    (table,) = reply.body["tables"]
    assert table["status"] == "pending"
    assert table["destinations"] == {"box": {"status": "pending"}, "sftp:local": {"status": "pending"}}


def test_sync_without_wait_answers_the_run_and_its_tables_at_once(trigger: Trigger) -> None:
    run_id = "h" + uuid.uuid4().hex[:12]
    body = {"dataset": "sales", "tables": "products,customers,products", "date": "2025-01-08", "run_id": run_id}
    reply = trigger.call("POST", "/sync", body)
    assert reply.status == 202
    assert reply.body["dataset"] == "sales" and reply.body["run_id"] == run_id
    assert reply.body["tables"] == ["products", "customers"]
    assert reply.body["date"] == "2025-01-08"
    assert set(reply.body["destinations"]) == DESTINATIONS
    done = _poll_run(trigger, run_id, lambda b: b["complete"])
    assert (done["success"], done["errors"]) == (2, 0)
    assert [t["source"] for t in done["tables"]] == ["sales.customers", "sales.products"]


def test_a_null_run_id_is_as_if_none_were_given(trigger: Trigger) -> None:
    """``"run_id": null`` (a client serializing an unset field) was a 500; it names no run."""
    body = {"dataset": "sales", "tables": "products", "date": "2025-01-08", "run_id": None}
    reply = trigger.call("POST", "/sync", body)
    assert reply.status == 202, reply.body
    run_id = reply.body["run_id"]
    assert RUN_ID_RE.fullmatch(run_id) and reply.body["tables"] == ["products"]
    again = trigger.call("POST", f"/verify/{run_id}", {"run_id": None})
    assert again.status == 202 and again.body["request"]["run_id"] == run_id


def test_a_post_resent_with_its_idempotency_key_is_the_same_run(trigger: Trigger) -> None:
    """A client resending POST /sync after a lost answer starts no second run: the same key names
    the same run (each stage takes a run id it has seen as a redelivery); another key, another run."""
    body = {"dataset": "sales", "tables": "products", "date": "2025-01-08"}
    key = f"nightly-{uuid.uuid4().hex}"
    first = trigger.call("POST", "/sync", body, headers={"Idempotency-Key": key})
    again = trigger.call("POST", "/sync", body, headers={"Idempotency-Key": key})
    other = trigger.call("POST", "/sync", body, headers={"Idempotency-Key": key + "-2"})
    assert first.status == again.status == other.status == 202
    assert first.body["run_id"] == again.body["run_id"] != other.body["run_id"]
    assert RUN_ID_RE.fullmatch(first.body["run_id"])
    done = _poll_run(trigger, first.body["run_id"], lambda b: b["complete"])
    assert (done["success"], done["errors"], [t["source"] for t in done["tables"]]) == (1, 0, ["sales.products"])
    bad = trigger.call("POST", "/sync", body, headers={"Idempotency-Key": "x" * 300})
    assert bad.status == 400 and bad.body["error"].startswith("Idempotency-Key: ")


def test_without_tables_every_table_of_the_dataset_is_listed(trigger: Trigger) -> None:
    from shared.gcp.bigquery import warehouse

    run_id = "h" + uuid.uuid4().hex[:12]
    reply = trigger.call("POST", "/sync/sales", {"run_id": run_id, "date": "2025-01-08"})
    assert reply.status == 202
    tables = [t.name for t in warehouse().list_tables("sales") if t.exportable]
    # other tests of the worker may have added tables to `sales`: BigQuery's own listing is the truth
    assert reply.body["tables"] == tables and set(tables) >= {"customers", "orders", "products"}
    # fan_out publishes what the answer named: one run folder per table
    done = _poll_run(trigger, run_id, lambda b: len(b["tables"]) == len(tables), timeout_s=300)
    assert sorted(t["table"] for t in done["tables"]) == sorted(tables)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/sync", {"dataset": "sales", "tables": "orders; DROP TABLE x"}),
        ("/sync", {"dataset": "nope"}),
        ("/sync", {"dataset": "sales", "export": "orders_daily"}),
        ("/sync", {"dataset": "sales", "format": "XLS"}),
        ("/sync", {"dataset": "sales", "destinations": "ftp:x"}),
        ("/sync", {"dataset": "sales", "surprise": 1}),
        ("/sync", b"{not json"),
        ("/sync", b""),
    ],
)
def test_bad_requests_get_400_with_the_pubsub_paths_message(trigger: Trigger, path: str, body: Any) -> None:
    """The same parser and config checks as fan_out: the same field-naming message."""
    import json

    from shared.stages.fan_out import check_request

    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(RejectedInput) as expected:
        check_request(ExportRequest.from_json(raw), trigger.config)
    reply = trigger.call("POST", path, body)
    assert reply.status == 400
    assert reply.body == {"error": str(expected.value)}


def test_unknown_table_is_checked_against_bigquery_as_fan_out_does(trigger: Trigger) -> None:
    reply = trigger.call("POST", "/sync/sales", {"tables": "products,ghosts"})
    assert reply.status == 400
    assert reply.body["error"].startswith("export request.tables: 'ghosts' is not a table of offsite-local.sales")


def test_bad_paths_and_parameters_get_400_404_405(trigger: Trigger) -> None:
    conflict = trigger.call("POST", "/sync/sales", {"dataset": "other"})
    assert conflict.status == 400
    assert conflict.body["error"] == "export request.dataset: 'other' in the body is not 'sales' of the path"
    assert trigger.call("POST", "/sync/bad.name").status == 400
    wait = trigger.call("POST", "/sync/sales?wait=soon")
    assert wait.status == 400 and wait.body["error"] == "wait: 'soon' is not a number of seconds"
    too_long = trigger.call("POST", "/sync/sales?wait=99999")
    assert too_long.status == 400 and "must be between 0 and 3570 seconds" in too_long.body["error"]
    assert trigger.call("GET", "/runs/r000000000000?days=0").status == 400
    assert trigger.call("GET", "/runs/r000000000000?days=" + "9" * 5000).status == 400  # was int()'s 500
    arabic_three = trigger.call("GET", "/runs/r000000000000?days=\u0663")  # str.isdigit() and int() take it
    assert arabic_three.status == 400 and arabic_three.body["error"].startswith("days: '\u0663' must be a whole number")
    missing = trigger.call("GET", "/runs/rnosuchrun000")
    assert missing.status == 404 and "no run 'rnosuchrun000'" in missing.body["error"]
    dest = trigger.call("POST", "/verify/r000000000000?destination=sftp:nobody")
    assert dest.status == 400
    assert dest.body["error"].startswith("verify request.destination: 'sftp:nobody' is not a configured destination")
    assert trigger.call("GET", "/sync").status == 405
    assert trigger.call("GET", "/elsewhere").status == 404


@pytest.mark.parametrize("refusal", REFUSALS)
def test_a_wait_whose_run_history_cannot_be_read_answers_202_with_the_run_not_503(
    trigger: Trigger, monkeypatch: pytest.MonkeyPatch, refusal: Any
) -> None:
    """Once the request is published, a 503 (Retry-After: "nothing was published") made a client
    start a second run, and so did the 500 of a history whose reading is refused (Cloud Scheduler
    retries any 5xx). GCS down or refusing, at the Google client (fake-gcs-server cannot answer
    503 or 403): the answer is a 202 naming the run and why its progress is unknown."""
    from shared.http_trigger import api

    refused = refuse_history(monkeypatch, refusal)
    request = api.HttpRequest("POST", "/sync/sales", {"wait": "1"}, body=b'{"tables": "products"}')
    reply = api.sync(request, trigger.config, "sales", lambda s: None)
    assert refused, "the run history was never listed"
    assert reply.status == 202 and reply.body["complete"] is False, reply.body
    assert reply.body["run_id"] and "its progress could not be read" in reply.body["error"]
