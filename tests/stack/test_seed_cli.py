"""`offsite dev seed` loads the sample dataset into a running stack's BigQuery and puts sample
partner files in the outbox of its collect job."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from devstack.state import StackInfo
from shared.gcp import clients

ROOT = Path(__file__).resolve().parents[2]


def test_seed_loads_the_sample_tables(bare_stack_env: StackInfo) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "offsite.cli", "dev", "seed", "--root", str(bare_stack_env.root)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "offsite-local.sales.orders (200,000 rows)" in done.stdout
    bq = clients.bigquery_client()
    counts = {
        t: next(iter(bq.query(f"SELECT COUNT(*) FROM `offsite-local.sales.{t}`").result()))[0]
        for t in ("orders", "customers", "products")
    }
    assert counts["orders"] == 200_000 and counts["customers"] > 0 and counts["products"] > 0
    again = subprocess.run(
        [sys.executable, "-m", "offsite.cli", "dev", "seed", "--json", "--root", str(bare_stack_env.root)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    outbox = bare_stack_env.sftp.directory / "partner-toast/outbox"
    assert json.loads(again.stdout) == {
        "project": "offsite-local",
        "dataset": "sales",
        "rows": counts,
        "partner_files": [str(outbox / name) for name in ("OrderDetails_20250108.csv", "TimeEntries_20250108.csv")],
    }
    owner = bare_stack_env.sftp.directory.stat().st_uid
    assert all((outbox / n).stat().st_uid == owner for n in ("OrderDetails_20250108.csv", "TimeEntries_20250108.csv"))


def test_seed_without_a_stack_says_so(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "offsite.cli", "dev", "seed", "--root", str(tmp_path / "none")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1, done.stderr
