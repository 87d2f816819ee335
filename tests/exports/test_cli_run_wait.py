"""`offsite run --wait` reads the run history: an export reported failed ends the wait at once
(exit 1), and the wait itself reports nothing (fan_out does)."""

from __future__ import annotations

import time
import uuid

import pytest
from typer.testing import CliRunner

from offsite.cli import app
from tests.exports.conftest import ExportsKit

pytestmark = pytest.mark.stack


def _invoke(*args: str):  # type: ignore[no-untyped-def]
    from shared import runtime

    runtime.reset()
    return CliRunner().invoke(app, ["run", *args])


@pytest.mark.parametrize("destination", [None, "box"], ids=["export-failed", "dead-lettered"])
def test_wait_ends_when_the_export_is_reported_failed(exports_env: ExportsKit, destination: str | None) -> None:
    """export_table reports a failed export without a destination; a dead-lettered table export is
    reported once per destination of the task. Either way no manifest will come."""
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
    out = _invoke("--dataset", "sales", "--tables", "products", "--run-id", run_id, "--wait", "--timeout", "30")
    assert out.exit_code == 1, out.output
    assert time.monotonic() - started < 15, "before: it waited the whole --timeout"
    assert "sales.products: export failed (export_table): BigQuery extract job failed" in out.output
    assert "no manifest after" not in out.output


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
    out = _invoke("--dataset", "sales", "--tables", "products", "--wait", "--timeout", "1")
    assert out.exit_code == 1, out.output  # the bare stack runs no fan_out: no manifest comes
    assert "waiting for 1 export(s): sales.products" in out.output and "cannot tell" not in out.output
    assert "no manifest after 1s for: sales.products" in out.output and len(listings) == 2
