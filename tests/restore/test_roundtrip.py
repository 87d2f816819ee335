"""export → deliver → restore → proven equal, on the whole local stack (every function running):
a table of edge values exported in each format, delivered to the local Box and OpenSSH sshd,
restored from there into bqemulator (through the BigQuery front) and compared with the manifest."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from devstack.state import StackInfo
from offsite.cli import app
from shared import runtime
from shared.destinations import factory
from shared.errors import PermanentError
from shared.gcp import clients
from shared.restore import restore as restoring
from shared.restore.stage import DamagedFile
from tests.verify.test_pipeline import final, wait_for

pytestmark = pytest.mark.stack
STAGING = "offsite-restore-staging"
MAX_NUMERIC = "99999999999999999999999999999.999999999"
FLAT = [
    {"name": "id", "type": "INTEGER", "mode": "REQUIRED"},
    {"name": "s", "type": "STRING"},
    {"name": "b", "type": "BYTES"},
    {"name": "n", "type": "NUMERIC"},
    {"name": "ts", "type": "TIMESTAMP"},
    {"name": "d", "type": "DATE"},
    {"name": "dt", "type": "DATETIME"},
    {"name": "f", "type": "FLOAT"},
    {"name": "bo", "type": "BOOLEAN"},
]
NESTED = [
    *FLAT,
    {"name": "tags", "type": "STRING", "mode": "REPEATED"},
    {
        "name": "rec",
        "type": "RECORD",
        "fields": [{"name": "x", "type": "INTEGER"}, {"name": "ys", "type": "INTEGER", "mode": "REPEATED"}],
    },
]


def damage_at_rest(victim: Path) -> None:
    """Flip one bit in the middle of ``victim`` as bit rot does: same size, same mtime. A late
    duplicate of the upload event (Pub/Sub is at least once) then finds the SFTP ledger entry still
    matching and skips, as it would in the cloud; a visible change would be re-delivered, so
    repaired before the restore reads it (CI saw exactly that race)."""
    before = victim.stat()
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    os.utime(victim, ns=(before.st_atime_ns, before.st_mtime_ns))


def edge_rows(nested: bool) -> list[dict]:
    rows = [
        {"id": 1, "s": "héllo ☃ 日本 \U0001f600", "b": base64.b64encode(b"\x00a\x00\xff").decode(), "n": MAX_NUMERIC,
         "ts": "2025-01-08T10:00:00.123456Z", "d": "0001-01-01", "dt": "9999-12-31T23:59:59.999999", "f": 1.5,
         "bo": True},
        {"id": 2, "s": None, "b": None, "n": "-" + MAX_NUMERIC, "ts": None, "d": "9999-12-31", "dt": None,
         "f": None, "bo": None},
        {"id": 3, "s": "", "b": base64.b64encode(b"").decode(), "n": "0.000000001", "ts": "1970-01-01T00:00:00.000001Z",
         "d": None, "dt": "0001-01-01T00:00:00", "f": -0.25, "bo": False},
    ]  # fmt: skip
    if nested:
        extra = [
            {"tags": ["a", "b"], "rec": {"x": 1, "ys": [1, 2]}},
            {"tags": [], "rec": None},
            {"tags": ["ü"], "rec": {"x": None, "ys": []}},
        ]
        rows = [{**r, **e} for r, e in zip(rows, extra, strict=True)]
    return rows


def make_table(name: str, nested: bool) -> None:
    from google.cloud import bigquery

    client, project = clients.bigquery_client(), clients.project()
    table = bigquery.Table(
        f"{project}.sales.{name}", schema=[bigquery.SchemaField.from_api_repr(f) for f in (NESTED if nested else FLAT)]
    )
    client.create_dataset(f"{project}.sales", exists_ok=True)  # bqemulator: 500 (retried) in a missing dataset
    client.delete_table(table, not_found_ok=True)
    client.create_table(table)
    assert client.insert_rows_json(table, edge_rows(nested)) == []


def export_and_wait(info: StackInfo, table: str, fmt: str) -> str:
    run_id = "r" + uuid.uuid4().hex[:12]
    request = {"dataset": "sales", "tables": [table], "run_id": run_id, "format": fmt}
    info.pubsub_admin().publish("export-requests", json.dumps(request).encode())
    results = wait_for(
        info.state_bucket,
        run_id,
        lambda rs: bool(final(rs, "box")) and bool(final(rs, "sftp:local")),
        "box and sftp results",
    )
    assert {(r.destination, r.status) for r in results if r.status != "incomplete"} == {
        ("box", "in_sync"),
        ("sftp:local", "in_sync"),
    }
    return run_id


@pytest.fixture
def restore_env(stack_env: StackInfo) -> StackInfo:
    storage = clients.storage_client()
    if storage.lookup_bucket(STAGING) is None:
        storage.create_bucket(STAGING)
    clients.bigquery_client().create_dataset(f"{stack_env.project}.restored", exists_ok=True)
    return stack_env


def restored_rows(target: str) -> list[dict]:
    rows = clients.bigquery_client().list_rows(target).to_arrow(create_bqstorage_client=False).to_pylist()
    return sorted(rows, key=lambda r: r["id"])


CASES = [
    ("PARQUET", True, "box"),
    ("AVRO", True, "sftp:local"),
    ("NEWLINE_DELIMITED_JSON", True, "box"),
    ("CSV", False, "sftp:local"),
]


@pytest.mark.parametrize("fmt, nested, source", CASES)
def test_edge_values_round_trip_and_are_proven_equal(
    restore_env: StackInfo, fmt: str, nested: bool, source: str
) -> None:
    table = f"edges_{fmt.lower()[:4]}"
    make_table(table, nested)
    run_id = export_and_wait(restore_env, table, fmt)
    target = f"{restore_env.project}.restored.{table}_{uuid.uuid4().hex[:6]}"
    with factory.opened(source, runtime.config()) as destination:
        plan = restoring.plan(destination, run_id, target=target, staging_bucket=STAGING, table=f"sales.{table}")
        result = restoring.execute(destination, plan)
    assert result.proof is not None
    assert result.proof.problems == [] and result.proof.fingerprint_checked and result.proof.rows == 3
    source_rows = sorted(
        clients.bigquery_client()
        .list_rows(f"{restore_env.project}.sales.{table}")
        .to_arrow(create_bqstorage_client=False)
        .to_pylist(),
        key=lambda r: r["id"],
    )
    assert restored_rows(target) == source_rows


def test_one_changed_byte_stops_the_restore_before_loading(restore_env: StackInfo) -> None:
    make_table("edges_damage", True)
    run_id = export_and_wait(restore_env, "edges_damage", "PARQUET")
    config = runtime.config()
    folder = Path(restore_env.sftp.directory) / "sales" / "edges_damage"
    [victim] = [p for p in folder.rglob("*.parquet") if run_id in str(p)]
    damage_at_rest(victim)
    target = f"{restore_env.project}.restored.damaged_{uuid.uuid4().hex[:6]}"
    with factory.opened("sftp:local", config) as destination:
        plan = restoring.plan(destination, run_id, target=target, staging_bucket=STAGING)
        with pytest.raises(DamagedFile, match=victim.name):
            restoring.execute(destination, plan)
    from google.api_core.exceptions import NotFound

    with pytest.raises(NotFound):
        clients.bigquery_client().get_table(target)  # nothing was loaded

    # the CLI says the same, exit 1; and the Box copy of the same run restores
    cli = CliRunner().invoke(
        app, ["restore", run_id, "--from", "sftp:local", "--to", target, "--staging-bucket", STAGING]
    )
    assert cli.exit_code == 1 and victim.name in cli.output and "damaged" in cli.output
    dry = CliRunner().invoke(
        app, ["restore", run_id, "--from", "box", "--to", target, "--staging-bucket", STAGING, "--dry-run", "--json"]
    )
    assert dry.exit_code == 0, dry.output
    listed = json.loads(dry.stdout)
    assert listed["rows"] == 3 and [f["path"].rsplit("/", 1)[1] for f in listed["files"]] == [victim.name]
    assert listed["files"][0]["sha1"] and listed["staging"][0].startswith(f"gs://{STAGING}/offsite-restore/{run_id}/")
    with pytest.raises(NotFound):
        clients.bigquery_client().get_table(target)  # a dry run changes nothing
    bad = CliRunner().invoke(
        app,
        ["restore", run_id, "--from", "box", "--to", target, "--staging-bucket", STAGING, "--write-disposition", "x"],
    )
    assert bad.exit_code == 2 and "--write-disposition: 'x' is not one of empty, truncate, append" in bad.output
    ok = CliRunner().invoke(
        app, ["restore", run_id, "--from", "box", "--to", target, "--staging-bucket", STAGING, "--json"]
    )
    assert ok.exit_code == 0, ok.output
    summary = json.loads(ok.stdout)
    assert summary["equal"] is True and summary["restored_rows"] == 3 and summary["fingerprint_checked"] is True


def test_point_in_time_picks_the_newest_complete_run_on_or_before_the_day(restore_env: StackInfo) -> None:
    make_table("edges_pit", False)
    older = export_and_wait(restore_env, "edges_pit", "PARQUET")
    newer = export_and_wait(restore_env, "edges_pit", "PARQUET")
    config, today = runtime.config(), dt.datetime.now(dt.UTC).date()
    with factory.opened("sftp:local", config) as destination:
        target = f"{restore_env.project}.restored.pit_{uuid.uuid4().hex[:6]}"
        plan = restoring.plan(
            destination, None, target=target, staging_bucket=STAGING, table="sales.edges_pit", as_of=today
        )
        assert plan.run.manifest.run_id == newer
        # the newest copy loses a file: it is no longer complete, the older run is chosen
        [victim] = [p for p in (Path(restore_env.sftp.directory) / "sales").rglob("*.parquet") if newer in str(p)]
        victim.unlink()
        plan = restoring.plan(
            destination, None, target=target, staging_bucket=STAGING, table="sales.edges_pit", as_of=today
        )
        assert plan.run.manifest.run_id == older
        with pytest.raises(PermanentError, match="on or before"):
            restoring.plan(
                destination, None, target=target, staging_bucket=STAGING, table="sales.edges_pit",
                as_of=today - dt.timedelta(days=1),
            )  # fmt: skip
    cli = CliRunner().invoke(
        app,
        ["restore", "--table", "sales.edges_pit", "--date", today.isoformat(), "--from", "box", "--to", target,
         "--staging-bucket", STAGING, "--json"],
    )  # fmt: skip
    assert cli.exit_code == 0, cli.output
    summary = json.loads(cli.stdout)
    assert summary["run_id"] == newer and summary["equal"] is True  # Box still holds the newer run whole


def test_query_export_restores_from_its_shared_dated_folder(restore_env: StackInfo) -> None:
    from devstack.sample_data import seed

    seed(clients.bigquery_client(), restore_env.project, tables=("orders",))
    run_id = "r" + uuid.uuid4().hex[:12]
    request = {"export": "orders_daily", "date": "2025-01-08", "run_id": run_id}
    restore_env.pubsub_admin().publish("export-requests", json.dumps(request).encode())
    results = wait_for(restore_env.state_bucket, run_id, lambda rs: bool(final(rs, "sftp:local")), "the sftp result")
    assert [r.status for r in final(results, "sftp:local")] == ["in_sync"]
    folder = Path(restore_env.sftp.directory) / "orders_daily" / "20250108"
    assert (folder / f"_manifest_{run_id}.json").exists()  # named by run: the folder is shared by the day's runs
    target = f"{restore_env.project}.restored.orders_daily_{uuid.uuid4().hex[:6]}"
    with factory.opened("sftp:local", runtime.config()) as destination:
        plan = restoring.plan(destination, run_id, target=target, staging_bucket=STAGING, table="orders_daily")
        result = restoring.execute(destination, plan)
    assert result.proof is not None and result.proof.problems == [] and result.proof.fingerprint_checked
    assert result.proof.rows == plan.run.manifest.row_count > 1000
