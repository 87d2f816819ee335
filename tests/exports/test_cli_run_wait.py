"""`offsite run --wait` reads the run history: an export reported failed ends the wait at once
(exit 1), so does a final verify result at every destination (exit 0 only when all are
in_sync), and the wait itself reports nothing (fan_out does)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from offsite.cli import app
from tests.exports.conftest import ExportsKit

pytestmark = pytest.mark.stack


def _invoke(*args: str):  # type: ignore[no-untyped-def]
    from shared import runtime

    runtime.reset()
    return CliRunner().invoke(app, ["run", *args])


@pytest.mark.parametrize("until", ["verified", "exported"])
@pytest.mark.parametrize("destination", [None, "box"], ids=["export-failed", "dead-lettered"])
def test_wait_ends_when_the_export_is_reported_failed(
    exports_env: ExportsKit, destination: str | None, until: str
) -> None:
    """export_table reports a failed export without a destination; a dead-lettered table export is
    reported once per destination of the task. Either way no manifest will come, and no verify
    result at the other destination."""
    from shared import runtime
    from shared.ids import Stage
    from shared.messages import Source, VerifyResult
    from shared.reporting.results import report

    cfg = runtime.config()
    run_id = "rfail" + uuid.uuid4().hex[:8]
    report(
        VerifyResult(
            status="failed",
            stage=Stage.EXPORT_TABLE,
            run_id=run_id,
            destination=destination,
            source=Source(mode="table", project=cfg.project, dataset="sales", table="products"),
            reason="BigQuery extract job failed: permanent error",
        ),
        config=cfg,
    )
    started = time.monotonic()
    out = _invoke("--dataset", "sales", "--tables", "products", "--run-id", run_id, "--until", until, "--timeout", "30")
    assert out.exit_code == 1, out.output
    assert time.monotonic() - started < 15, "before: it waited the whole --timeout"
    assert "sales.products: export failed (export_table): BigQuery extract job failed" in out.output
    assert "no manifest after" not in out.output and "no final verify result" not in out.output


def _report_verified(run_id: str, statuses: dict[str, str]) -> None:
    """Report verify's final result of sales.products at each destination, as verify would."""
    from shared import runtime
    from shared.ids import Stage
    from shared.messages import Source, VerifyResult
    from shared.reporting.results import report

    cfg = runtime.config()
    for destination, status in statuses.items():
        report(
            VerifyResult(
                status=status,
                stage=Stage.VERIFY,
                check="sha1",
                run_id=run_id,
                destination=destination,
                source=Source(mode="table", project=cfg.project, dataset="sales", table="products"),
                files_expected=1,
                files_present=1,
                bytes_expected=16246,
                bytes_present=16246,
                duration_s=2.0,
                reason=None if status == "in_sync" else "1 file differs: part-000000000000.parquet",
            ),
            config=cfg,
        )


def test_wait_ends_when_every_destination_has_its_final_result(exports_env: ExportsKit) -> None:
    """By default --wait waits for verify, not only for the manifest: once both destinations
    have a final result it ends, exit 1 because one of them is a mismatch (named on stderr)."""
    run_id = "rver" + uuid.uuid4().hex[:8]
    _report_verified(run_id, {"box": "in_sync", "sftp:local": "mismatch"})
    started = time.monotonic()
    args = ("--dataset", "sales", "--tables", "products", "--destinations", "box,sftp:local", "--run-id", run_id)
    out = _invoke(*args, "--wait", "--timeout", "30")
    assert out.exit_code == 1, out.output
    assert time.monotonic() - started < 15, "it waited the whole --timeout"
    assert "verified: sales.products → box: in_sync (files 1/1, sha1)" in out.stdout
    assert "verified: sales.products → sftp:local: mismatch (files 1/1, sha1)" in out.stdout
    assert "error: sales.products → sftp:local: mismatch (verify): 1 file differs" in out.stderr
    assert "error: sales.products → box" not in out.stderr


def test_wait_succeeds_when_every_destination_is_in_sync(exports_env: ExportsKit) -> None:
    run_id = "rver" + uuid.uuid4().hex[:8]
    _report_verified(run_id, {"box": "in_sync", "sftp:local": "in_sync"})
    args = ("--dataset", "sales", "--tables", "products", "--destinations", "box,sftp:local", "--run-id", run_id)
    out = _invoke(*args, "--wait", "--timeout", "30", "--json")
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert (
        doc["complete"] is True and doc["failures"] == [] and doc["manifests"] == []
    )  # the bare stack exports nothing
    verified = doc["verified"]
    assert verified["run_id"] == run_id and verified["success"] == 1 and verified["errors"] == 0
    [table] = verified["tables"]
    assert table["source"] == "sales.products" and table["status"] == "in_sync"
    assert {d: v["status"] for d, v in table["destinations"].items()} == {"box": "in_sync", "sftp:local": "in_sync"}


def test_a_verify_result_that_is_not_final_keeps_the_wait_going(exports_env: ExportsKit) -> None:
    """`incomplete` may still be healed by the sweep: the wait goes on to its timeout and names
    what it was waiting for."""
    run_id = "rver" + uuid.uuid4().hex[:8]
    _report_verified(run_id, {"box": "incomplete"})
    args = ("--dataset", "sales", "--tables", "products", "--destinations", "box,sftp:local", "--run-id", run_id)
    out = _invoke(*args, "--wait", "--timeout", "2", "--json")
    assert out.exit_code == 1, out.output
    assert (
        "no final verify result after 2s for: sales.products → box (incomplete), sales.products → sftp:local (pending)"
    ) in out.stderr
    assert json.loads(out.stdout)["complete"] is False


def test_wait_reports_nothing_itself(exports_env: ExportsKit, monkeypatch: pytest.MonkeyPatch) -> None:
    """A table whose name offsite cannot carry is reported `rejected` by fan_out, once; before,
    `offsite run --wait` reported it too (twice), as it planned with fan_out's plan()."""
    import shared.gcp.bigquery as bq
    from shared.gcp.bigquery import BigQueryWarehouse, TableInfo
    from shared.topology import VERIFY_RESULTS

    class WithSpacedTable(BigQueryWarehouse):
        def list_tables(self, dataset: str) -> list[TableInfo]:
            return [*super().list_tables(dataset), TableInfo("orders eu", "TABLE")]

    kit = exports_env
    monkeypatch.setattr(bq, "warehouse", lambda: WithSpacedTable(kit.bigquery()))
    results = kit.subscribe(VERIFY_RESULTS)
    out = _invoke("--dataset", "sales", "--wait", "--timeout", "1")
    assert out.exit_code == 1, out.output  # the bare stack runs no fan_out: no manifest comes
    assert "waiting for 3 export(s): sales.customers, sales.orders, sales.products" in out.output
    assert [m for m in results.drain(settle_s=2.0) if "orders eu" in (m.get("reason") or "")] == []


def test_bigquery_away_after_publishing_keeps_the_plan_made_before(
    exports_env: ExportsKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wait plans before publishing, and again after (a request around midnight may belong to
    the next day). BigQuery answering the second listing with a transient error leaves the first
    plan standing: the wait goes on, rather than ending with "cannot tell which manifests"."""
    import shared.gcp.bigquery as bq
    from shared.errors import TransientError
    from shared.gcp.bigquery import BigQueryWarehouse, TableInfo

    listings = []

    class AwayAfterTheFirstListing(BigQueryWarehouse):
        def list_tables(self, dataset: str) -> list[TableInfo]:
            listings.append(dataset)
            if len(listings) > 1:
                raise TransientError("listing tables of offsite-local.sales: ServiceUnavailable: 503")
            return super().list_tables(dataset)

    kit = exports_env
    monkeypatch.setattr(bq, "warehouse", lambda: AwayAfterTheFirstListing(kit.bigquery()))
    out = _invoke("--dataset", "sales", "--tables", "products", "--until", "exported", "--timeout", "1")
    assert out.exit_code == 1, out.output  # the bare stack runs no fan_out: no manifest comes
    assert "waiting for 1 export(s): sales.products" in out.output and "cannot tell" not in out.output
    assert "no manifest after 1s for: sales.products" in out.output and len(listings) == 2


@pytest.fixture
def gcs_away(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """GCS at a port nothing listens on, the library's own retry (``gcs.LIBRARY_RETRY``) cut to 5 s."""
    import socket

    from google.cloud.storage.retry import DEFAULT_RETRY

    from shared.gcp import clients, gcs

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(gcs, "LIBRARY_RETRY", DEFAULT_RETRY.with_timeout(5.0))
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    clients.reset()
    yield
    monkeypatch.undo()
    clients.reset()


def test_gcs_away_the_wait_ends_at_its_timeout_and_says_why(exports_env: ExportsKit, gcs_away: None) -> None:
    """GCS unreachable once the request is published: each poll's reads fail. No retry inside a
    poll waits past the --timeout, so the wait ends about then (one read per kind after it: 2 ×
    5 s here), and it says the last poll could not read GCS. Before, each read retried 3 times
    inside each poll: 30 s here; on the local stack a 120 s wait took 3 min 43 s."""
    started = time.monotonic()
    out = _invoke("--dataset", "sales", "--tables", "products", "--wait", "--timeout", "2")
    elapsed = time.monotonic() - started
    assert out.exit_code == 1, out.output
    assert "error: the last poll could not read GCS, so this is what was known before: " in out.output
    assert "no final verify result after 2s for: sales.products (not exported)" in out.output
    assert elapsed < 22, f"the wait took {elapsed:.0f}s for a 2 s --timeout"
