"""Dead-lettered messages become `failed` results naming the stage, run, table, destination and
the last error — once each (shared/stages/dead_letters.py), through verify's own entry point."""

from __future__ import annotations

import json
import uuid
from typing import Any

from typer.testing import CliRunner

from offsite.cli import app
from shared.errors import TransientError
from shared.ids import Stage
from shared.stages import runner
from tests.verify.conftest import VerifyStack

FILES = {"orders_20250108-000000000000.parquet": b"parquet bytes" * 100}


def dead_letter_event(vstack: VerifyStack, dlq_topic: str, data: bytes, source_subscription: str) -> dict[str, Any]:
    """What the report subscription on a dead-letter topic pushes to verify."""
    subscription = f"projects/{vstack.info.project}/subscriptions/{source_subscription}"
    attributes = {
        "CloudPubSubDeadLetterSourceSubscription": subscription,
        "CloudPubSubDeadLetterSourceDeliveryCount": "5",
    }
    return vstack.pubsub_event(dlq_topic, data, attributes)


def test_a_dead_lettered_upload_is_a_failed_result_with_its_last_error(vstack: VerifyStack) -> None:
    run = vstack.new_run(FILES, ("memory", "sftp:local"))
    name = next(iter(FILES))
    event = vstack.storage_event(run.folder.prefix + name)

    def partner_down(_event: Any, _config: Any) -> None:
        raise TransientError("sftp:local: connection refused by 127.0.0.1:2222")

    for _ in range(2):  # the function fails on each delivery; the runner keeps the last error
        try:
            runner.run(Stage.TRANSFER_SFTP, event, partner_down)
        except TransientError:
            pass
    dead = dead_letter_event(
        vstack, "transfer-sftp-gcs-finalized-dlq", json.dumps(event["data"]).encode(), "transfer-sftp-gcs-finalized"
    )
    vstack.run_verify(dead)
    [failed] = vstack.results_for(run)
    assert (failed.status, failed.stage, failed.destination) == ("failed", "transfer_sftp", "sftp:local")
    assert failed.source is not None and failed.source.label == "sales.orders" and failed.date == "2025-01-08"
    assert "dead-lettered after 5 delivery attempts on transfer-sftp-gcs-finalized" in (failed.reason or "")
    assert "connection refused by 127.0.0.1:2222" in (failed.reason or "")
    vstack.run_verify(dead)  # Pub/Sub may deliver a dead letter twice: reported once
    assert len(vstack.results_for(run)) == 1
    # Alerted at once (the report, not a later sweep), naming the run, the table and the destination.
    [alert] = [a["text"] for a in vstack.alerts() if run.run_id in a.get("text", "")]
    assert "sales.orders" in alert and "sftp:local" in alert and "failed" in alert
    # ... and `offsite status` shows the run with that destination failed and why.
    out = CliRunner().invoke(app, ["status", "--since", "1d", "--json"])
    assert out.exit_code == 0, out.output
    [row] = [row for row in json.loads(out.output) if row["run_id"] == run.run_id]
    assert row["source"] == "sales.orders" and row["destinations"] == {"sftp:local": "failed"}
    assert "dead-lettered" in row["last_failure"]


def _object_dead_letter(vstack: VerifyStack, name: str, subscription: str) -> dict[str, Any]:
    """The dead letter of ``subscription``'s finalize notification of object ``name``."""
    data = json.dumps(vstack.storage_event(name)["data"]).encode()
    return dead_letter_event(vstack, f"{subscription}-dlq", data, subscription)


def test_a_dead_lettered_manifest_copy_is_a_failed_result_of_its_run_and_destination(vstack: VerifyStack) -> None:
    """The uploaders deliver the manifest's copy on its finalize event: its dead letter is that
    run's failure at the function's destinations, not a failure of no run at all."""
    run = vstack.new_run(FILES, ("memory", "sftp:local"))
    vstack.run_verify(_object_dead_letter(vstack, run.folder.manifest_name, "transfer-sftp-gcs-finalized"))
    [failed] = vstack.results_for(run)
    assert (failed.status, failed.stage, failed.destination) == ("failed", "transfer_sftp", "sftp:local")
    assert failed.source is not None and failed.source.label == "sales.orders" and failed.date == "2025-01-08"
    out = CliRunner().invoke(app, ["status", "--since", "1d", "--json"])
    assert out.exit_code == 0, out.output
    [row] = [row for row in json.loads(out.output) if row["run_id"] == run.run_id]
    assert row["source"] == "sales.orders" and row["destinations"] == {"sftp:local": "failed"}


def test_a_dead_lettered_verify_of_a_manifest_is_a_failed_result_of_its_run(vstack: VerifyStack) -> None:
    """verify compares every destination on the manifest's event; its dead letter names the run
    (no one destination: a result already in for another stands)."""
    run = vstack.new_run(FILES, ("memory", "sftp:local"))
    vstack.run_verify(_object_dead_letter(vstack, run.folder.manifest_name, "verify-gcs-finalized"))
    [failed] = vstack.results_for(run)
    assert (failed.status, failed.stage, failed.destination) == ("failed", "verify", None)
    assert failed.source is not None and failed.source.label == "sales.orders" and failed.date == "2025-01-08"


def test_a_dead_lettered_file_of_a_folder_without_its_run_record_names_the_run_by_its_path(
    vstack: VerifyStack,
) -> None:
    run = vstack.new_run(FILES, ("memory", "sftp:local"))
    from shared.gcp import gcs

    gcs.delete(vstack.bucket, run.folder.run_name)  # _run.json gone: the folder's path still tells
    vstack.run_verify(_object_dead_letter(vstack, run.folder.manifest_name, "transfer-sftp-gcs-finalized"))
    [failed] = vstack.results_for(run)
    assert (failed.status, failed.stage, failed.destination) == ("failed", "transfer_sftp", None)
    assert failed.source is not None and failed.source.label == "sales.orders" and failed.date == "2025-01-08"


def test_a_dead_lettered_table_export_fails_every_destination_of_the_run(vstack: VerifyStack) -> None:
    run = vstack.new_run(FILES, ("memory", "sftp:local"), manifest=False)
    from shared.gcp import gcs

    task = gcs.read_bytes(vstack.bucket, run.folder.run_name)  # the TableExport export_table was given
    assert task is not None
    vstack.run_verify(dead_letter_event(vstack, "export-table-table-exports-dlq", task, "export-table-table-exports"))
    results = vstack.results_for(run)
    assert sorted((r.destination, r.stage, r.status) for r in results) == [
        ("memory", "export_table", "failed"),
        ("sftp:local", "export_table", "failed"),
    ]
    assert all("the last error was not recorded" in (r.reason or "") for r in results)


def test_a_dead_lettered_ingest_request_fails_each_requested_table_of_its_run(vstack: VerifyStack) -> None:
    from shared.ingest.request import IngestRequest

    run_id = f"ri{uuid.uuid4().hex[:10]}"
    body = IngestRequest(tables=("users", "chat_history"), run_id=run_id).to_json()
    vstack.run_verify(
        dead_letter_event(vstack, "ingest-sqlite-ingest-requests-dlq", body, "ingest-sqlite-ingest-requests")
    )
    reported = [r for r in vstack.results() if r.run_id == run_id]
    dataset = vstack.config.ingest.dataset
    assert sorted((r.source.label if r.source else None, r.stage, r.status) for r in reported) == [
        (f"{dataset}.chat_history", "ingest_sqlite", "failed"),
        (f"{dataset}.users", "ingest_sqlite", "failed"),
    ]


def test_an_unreadable_dead_letter_is_still_reported(vstack: VerifyStack) -> None:
    before = len(vstack.results())
    vstack.run_verify(dead_letter_event(vstack, "fan-out-export-requests-dlq", b"{not json", "fan-out-export-requests"))
    new = vstack.results()[before:]
    assert [(r.status, r.stage) for r in new] == [("failed", "fan_out")]
    assert "dead-lettered after 5 delivery attempts on fan-out-export-requests" in (new[0].reason or "")
