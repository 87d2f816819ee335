"""`offsite dev seed` loads the sample dataset into a running stack's BigQuery, sample objects
into its mirrored bucket, a sample SQLite app, and sample partner files in the outbox of its
collect job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from devstack.localconfig import MIRRORED_BUCKET
from devstack.mirror_sample import SAMPLE_OBJECTS
from devstack.state import StackInfo
from shared.gcp import clients, gcs

ROOT = Path(__file__).resolve().parents[2]


def offsite(*args: str, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the `offsite` CLI from the repository root; its output is captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "offsite.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env
    )


def test_seed_loads_the_sample_tables(bare_stack_env: StackInfo) -> None:
    done = offsite("dev", "seed", "--root", str(bare_stack_env.root))
    assert done.returncode == 0, done.stderr
    assert "offsite-local.sales.orders (200,000 rows)" in done.stdout
    assert "created offsite-local.drill_scratch (the scratch dataset of a restore drill" in done.stdout
    bq = clients.bigquery_client()
    counts = {
        t: next(iter(bq.query(f"SELECT COUNT(*) FROM `offsite-local.sales.{t}`").result()))[0]
        for t in ("orders", "customers", "products")
    }
    assert counts["orders"] == 200_000 and counts["customers"] > 0 and counts["products"] > 0
    assert (
        bq.get_dataset("offsite-local.drill_scratch").dataset_id == "drill_scratch"
    )  # the local config drills into it
    again = offsite("dev", "seed", "--json", "--root", str(bare_stack_env.root))
    assert again.returncode == 0, again.stderr
    outbox = bare_stack_env.sftp.directory / "partner-toast/outbox"
    seeded = json.loads(again.stdout)
    app_db = str(Path(bare_stack_env.root) / "app.db")
    assert seeded == {
        "project": "offsite-local",
        "dataset": "sales",
        "rows": counts,
        "drill_scratch": ["offsite-local.drill_scratch"],
        "sqlite": app_db,
        "sqlite_rows": seeded["sqlite_rows"],
        "mirrored_buckets": {MIRRORED_BUCKET: len(SAMPLE_OBJECTS)},
        "partner_files": [str(outbox / name) for name in ("OrderDetails_20250108.csv", "TimeEntries_20250108.csv")],
    }
    owner = bare_stack_env.sftp.directory.stat().st_uid
    assert all((outbox / n).stat().st_uid == owner for n in ("OrderDetails_20250108.csv", "TimeEntries_20250108.csv"))
    assert f"seeded gs://{MIRRORED_BUCKET} ({len(SAMPLE_OBJECTS)} objects" in done.stdout
    # the sample objects (spaces, unicode, deep prefixes) are in the mirrored bucket
    assert {o.name for o in gcs.list_prefix(MIRRORED_BUCKET, "")} >= set(SAMPLE_OBJECTS)
    assert seeded["sqlite_rows"]["users"] == 40 and seeded["sqlite_rows"]["chat_history"] == 400
    # the sample SQLite app lands in the local BigQuery with the stack's own `ingest:` config
    synced = offsite(
        "ingest", "run", "--json", "--config", str(bare_stack_env.config_path), env={**os.environ, **bare_stack_env.env}
    )
    assert synced.returncode == 0, synced.stdout + synced.stderr
    outcomes = {o["table"]: (o["status"], o["rows_read"]) for o in json.loads(synced.stdout)}
    assert outcomes == {
        "chat_history": ("synced", 400),
        "user_cohorts": ("synced", seeded["sqlite_rows"]["user_cohorts"]),
        "users": ("synced", 40),
    }
    # A person reads the command's output: the sync's INFO lines are not shown unless asked for.
    assert _log_lines(synced.stderr, "INFO") == [], synced.stderr
    verbose = offsite(
        "ingest",
        "run",
        "--json",
        "--config",
        str(bare_stack_env.config_path),
        env={**os.environ, **bare_stack_env.env, "OFFSITE_LOG_LEVEL": "info"},
    )
    assert verbose.returncode == 0 and _log_lines(verbose.stderr, "INFO"), verbose.stderr


def _log_lines(stderr: str, severity: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("severity") == severity]


def test_seed_without_a_stack_says_so(tmp_path: Path) -> None:
    done = offsite("dev", "seed", "--root", str(tmp_path / "none"), timeout=60)
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1, done.stderr
