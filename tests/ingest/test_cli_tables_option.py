"""`offsite ingest run --tables` that names no table is refused (exit 2), as `offsite run` refuses
it, instead of syncing every table (with --full: a full re-sync of everything)."""

from __future__ import annotations

import json

import pytest

from tests.ingest.conftest import IngestKit
from tests.ingest.test_cli import config_file, invoke


@pytest.mark.parametrize("value", [",", "", " , "])
def test_run_with_an_empty_table_list_syncs_nothing_and_exits_2(ingest: IngestKit, tmp_path, value: str) -> None:  # type: ignore[no-untyped-def]
    cfg = config_file(ingest, tmp_path)
    with ingest.sqlite() as conn:
        conn.execute("INSERT INTO users (id, name, updated_at) VALUES (1, 'ada', '2025-01-01 00:00:00')")
    out = invoke(cfg, "run", "--full", "--tables", value)
    assert out.exit_code == 2, out.output
    assert f"error: ingest run --tables: {value!r} names no table (expected comma-separated table names" in out.output
    status = invoke(cfg, "status", "--json")
    assert (status.exit_code, json.loads(status.stdout)) == (0, []), status.output  # nothing was synced
