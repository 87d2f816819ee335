"""`offsite run`: publishes what Cloud Scheduler would, prints the run id, optionally waits."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from typer.testing import CliRunner

from devstack.state import StackInfo
from offsite.cli import app
from shared.topology import EXPORT_REQUESTS
from tests.exports.conftest import ExportsKit


def _invoke(*args: str):
    from shared import runtime

    runtime.reset()
    return CliRunner().invoke(app, ["run", *args])


def test_dataset_request_is_published_with_a_generated_run_id(exports_env: ExportsKit) -> None:
    kit = exports_env
    requests = kit.subscribe(EXPORT_REQUESTS)
    result = _invoke("--dataset", "sales", "--tables", "orders, customers", "--destinations", "box", "--format", "avro")
    assert result.exit_code == 0, result.output
    run_id = re.search(r"^run_id: (r[0-9a-f]{12})$", result.output, re.MULTILINE).group(1)
    (body,) = requests.pull(lambda m: m.get("run_id") == run_id, count=1)
    assert body == {
        "dataset": "sales",
        "tables": ["orders", "customers"],
        "destinations": ["box"],
        "format": "avro",
        "run_id": run_id,
        "_attributes": {"origin": "offsite-run"},
    }


def test_query_request_with_explicit_run_id_and_json_output(exports_env: ExportsKit) -> None:
    kit = exports_env
    requests = kit.subscribe(EXPORT_REQUESTS)
    result = _invoke("--export", "orders_daily", "--date", "2025-01-08", "--run-id", "cli-q-1", "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed["topic"] == EXPORT_REQUESTS and printed["message_id"]
    assert printed["run_id"] == "cli-q-1" and printed["request"] == {
        "export": "orders_daily",
        "date": "2025-01-08",
        "run_id": "cli-q-1",
    }
    (body,) = requests.pull(lambda m: m.get("run_id") == "cli-q-1", count=1)
    assert {k: v for k, v in body.items() if k != "_attributes"} == printed["request"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--dataset", "nope"], "dataset: 'nope' is not a configured dataset (configured: sales)"),
        (["--export", "nope"], "export: 'nope' is not a configured export"),
        (["--export", "orders_daily", "--date", "2025-13-01"], "date: '2025-13-01' is not a valid calendar date"),
        (["--dataset", "sales", "--export", "orders_daily"], "not both"),
        ([], "one of 'dataset'"),
        (["--dataset", "sales", "--format", "xml"], "format: 'xml' is not supported"),
        (["--dataset", "sales", "--destinations", "sftp:nobody"], "'sftp:nobody' is not a configured destination"),
        (["--dataset", "sales", "--tables", "a b"], "tables: 'a b' is not a valid name"),
        (["--dataset", "sales", "--run-id", "no/slashes"], "run_id: 'no/slashes' does not match"),
    ],
)
def test_bad_arguments_are_refused_before_publishing(exports_env: ExportsKit, args: list[str], needle: str) -> None:
    kit = exports_env
    requests = kit.subscribe(EXPORT_REQUESTS)
    result = _invoke(*args)
    assert result.exit_code == 2
    assert needle in result.output
    assert requests.drain(settle_s=0.5) == []


def test_with_wait_a_table_bigquery_does_not_have_is_refused_before_publishing(exports_env: ExportsKit) -> None:
    """--wait plans what to wait for as fan_out will, before publishing: a table the dataset does
    not have is exit 2 with nothing published (as the HTTP trigger's 400), not a published
    request fan_out rejects and a wait that cannot start."""
    requests = exports_env.subscribe(EXPORT_REQUESTS)
    result = _invoke("--dataset", "sales", "--tables", "products,ghost", "--wait", "--timeout", "5")
    assert result.exit_code == 2, result.output
    assert (
        "error: export request.tables: 'ghost' is not a table of offsite-local.sales (tables: customers, orders,"
        " products) (nothing was published)"
    ) in " ".join(result.output.split())
    assert requests.drain(settle_s=0.5) == []


def test_wait_returns_when_the_manifest_is_written(stack_env: StackInfo) -> None:
    from devstack.sample_data import seed
    from shared.gcp import clients

    seed(clients.bigquery_client(), stack_env.project)
    run_id = "w" + uuid.uuid4().hex[:12]
    result = _invoke(
        "--export",
        "orders_daily",
        "--date",
        "2025-01-08",
        "--run-id",
        run_id,
        "--until",
        "exported",
        "--timeout",
        "120",
    )
    assert result.exit_code == 0, result.output
    assert f"exports/_queries/orders_daily/20250108/{run_id}/_manifest.json" in result.output
    assert re.search(r"done: export:orders_daily: \d+ rows in 1 files", result.output)
    # not a terminal: plain progress lines, no live table, no colour codes
    assert "waiting for 1 export(s): export:orders_daily" in result.stdout and "\x1b" not in result.stdout

    json_run = "w" + uuid.uuid4().hex[:12]
    waited = _invoke(
        "--export", "orders_daily", "--date", "2025-01-08", "--run-id", json_run, "--until", "exported", "--json"
    )
    assert waited.exit_code == 0, waited.output
    doc = json.loads(waited.stdout)  # one document, after the wait
    assert doc["run_id"] == json_run and doc["complete"] is True and doc["message_id"]
    [manifest] = doc["manifests"]
    assert manifest["source"] == "export:orders_daily" and manifest["files"] == 1
    assert manifest["rows"] > 0 and manifest["bytes"] > 0 and manifest["seconds"] >= 0
    assert manifest["manifest"].endswith(f"exports/_queries/orders_daily/20250108/{json_run}/_manifest.json")
    assert "verified" not in doc  # --until exported does not wait for verify


def test_wait_returns_once_every_destination_is_verified(stack_env: StackInfo) -> None:
    """--wait (until verified, the default) runs through delivery and verify: a line per
    destination once verified, exit 0 when in_sync everywhere."""
    from devstack.sample_data import seed
    from shared.gcp import clients

    seed(clients.bigquery_client(), stack_env.project)
    run_id = "v" + uuid.uuid4().hex[:12]
    result = _invoke(
        "--export", "orders_daily", "--date", "2025-01-08", "--run-id", run_id, "--wait", "--timeout", "180"
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    done = next(i for i, line in enumerate(lines) if line.startswith("done: export:orders_daily:"))
    verified = next(i for i, line in enumerate(lines) if line.startswith("verified: export:orders_daily → "))
    assert done < verified, result.stdout  # exported first, then verified
    assert re.fullmatch(r"verified: export:orders_daily → sftp:local: in_sync \(files 1/1, sha1\)", lines[verified])


def test_wait_gives_up_with_exit_code_1(exports_env: ExportsKit) -> None:
    """The bare stack runs no functions: nothing will ever write the manifest, nor verify it."""
    args = ("--dataset", "sales", "--tables", "products", "--date", "2025-01-08", "--timeout", "1")
    result = _invoke(*args, "--until", "exported")
    assert result.exit_code == 1
    assert "no manifest after 1s for: sales.products" in result.output
    result = _invoke(*args, "--wait")
    assert result.exit_code == 1
    assert "no final verify result after 1s for: sales.products → box (pending)" in result.output
    gave_up = _invoke("--dataset", "sales", "--tables", "products", "--wait", "--timeout", "1", "--json")
    assert gave_up.exit_code == 1
    doc = json.loads(gave_up.stdout)
    assert doc["complete"] is False and doc["manifests"] == [] and doc["request"]["tables"] == ["products"]
    assert doc["verified"]["complete"] is False and doc["verified"]["tables"][0]["status"] == "pending"
