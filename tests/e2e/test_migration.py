"""Moving over from bq-sftp-export (seed 003), end to end on a local stack of its own.

Seed 003's config, its query written the seed's way (``WHERE DATE(created_at) = '{date}'``), is
converted by ``offsite config import``; its export is routed to the stack's SFTP partner and the
stack started with it. A request for one day goes through the running functions (fan_out,
export_table, transfer_sftp, verify): the day's rows arrive at the SFTP server, verified in sync.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from devstack.state import StackInfo
from offsite.cli import app
from shared import runtime
from shared.gcp import clients, pubsub
from shared.topology import EXPORT_REQUESTS, VERIFY_RESULTS
from tests.exports.conftest import ExportsKit, load_entry_points

DAY = dt.date(2025, 1, 8)


def seed_003_config(project: str) -> dict:
    return {
        "sftp": {"host": "sftp.example.com", "port": 22, "username": "user", "password": "pw", "directory": "/uploads"},
        "gcs": {"bucket": "your-bucket-name", "expiration_days": 30},
        "exports": {
            "product_data": {
                "query": f"SELECT order_id, created_at FROM `{project}.sales.orders` WHERE DATE(created_at) = '{{date}}'"
            }
        },
    }


def test_an_imported_seed_003_export_delivers_the_day_with_a_quoted_date(
    stack_factory: Callable[..., StackInfo], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    legacy = tmp_path / "exports.json"
    legacy.write_text(json.dumps(seed_003_config("offsite-local")))
    imported = CliRunner().invoke(app, ["config", "import", str(legacy), "--partner", "local"])
    assert imported.exit_code == 0, imported.stderr
    (export,) = yaml.safe_load(imported.stdout)["exports"]
    assert export["sql"].endswith("WHERE DATE(created_at) = '{date}'") and export["date"] == "yesterday"
    overlay = tmp_path / "overlay.yaml"  # the imported export, delivered to the stack's own SFTP partner
    overlay.write_text(yaml.safe_dump({"exports": [{**export, "destinations": ["sftp:local"]}]}))

    stack = stack_factory(functions=True, config_overlay=overlay)
    for key, value in stack.env.items():
        monkeypatch.setenv(key, value)
    clients.reset()
    runtime.reset()
    from devstack.sample_data import seed

    seed(clients.bigquery_client(), stack.project)
    kit = ExportsKit(stack, load_entry_points())
    results = kit.subscribe(VERIFY_RESULTS)
    pubsub.publish(EXPORT_REQUESTS, json.dumps({"export": "product_data", "date": DAY.isoformat()}).encode())

    (result,) = results.pull(lambda m: m.get("destination") == "sftp:local", timeout_s=240)
    assert result["status"] == "in_sync", result
    delivered = sorted((Path(stack.sftp.directory) / "product_data" / "20250108").glob("*.csv.gz"))
    assert [p.name for p in delivered] == ["product_data_20250108-000000000000.csv.gz"]
    rows = list(csv.DictReader(io.StringIO(gzip.decompress(delivered[0].read_bytes()).decode(), newline="")))
    expected = {r["order_id"] for r in kit.source_rows("orders", where_date=DAY)}
    assert len(expected) > 0 and {int(r["order_id"]) for r in rows} == expected
    assert all(r["created_at"].startswith("2025-01-08") for r in rows)
    clients.reset()
    runtime.reset()
