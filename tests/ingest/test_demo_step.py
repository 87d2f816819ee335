"""The demo's ingest step (devstack/ingest_demo.py): one initial and one incremental sync of the sample app."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import yaml

from devstack.ingest_demo import show_incremental_sync
from devstack.state import StackInfo


def test_the_incremental_run_reads_only_what_the_app_changed(bare_stack_env: StackInfo, tmp_path: Path) -> None:
    from shared.gcp import clients

    cfg = yaml.safe_load(bare_stack_env.config_path.read_text())
    dataset = f"demo_{uuid.uuid4().hex[:8]}"
    cfg["ingest"].update(sqlite_path=str(tmp_path / "app.db"), dataset=dataset)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    lines: list[str] = []
    try:
        assert show_incremental_sync(dataclasses.replace(bare_stack_env, config_path=config), lines.append)
    finally:
        clients.bigquery_client().delete_dataset(
            f"{bare_stack_env.project}.{dataset}", delete_contents=True, not_found_ok=True
        )
    incremental = {line.split()[2].split(".")[1]: line for line in lines if line.startswith("  ingest incremental")}
    assert "read 5  merged 5" in incremental["chat_history"]
    # 3 updated in place (same ids, newer updated_at) + the 4 rows stamped with the previous watermark's
    # second, re-read by design (a timestamp cursor reads >= its watermark; docs/ingest.md)
    assert "read 7  merged 7" in incremental["users"]
    assert "synced" in incremental["user_cohorts"]  # no cursor: read whole, merged by its composite key
